import { ApiError } from './errors.js';

/** The statuses a retry may help with: 429 rate_limited and 503 (room_busy, upstream_unavailable, overloaded, …). */
export const RETRYABLE_STATUSES: readonly number[] = [429, 503];

export interface RetryOptions {
  /** Calls in all, the first included (default 3). */
  attempts?: number;
  /** Wait when a 429/503 names no `Retry-After`, in ms (default 1000). */
  defaultDelayMs?: number;
  /** Never wait longer than this for one retry, in ms: a longer `Retry-After` is thrown at once (default 30000). */
  maxDelayMs?: number;
  /** Stops waiting (the wait rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Called (and awaited) before each wait, e.g. to show "retrying in 2 s". */
  onRetry?: (error: ApiError, delayMs: number, attempt: number) => void | Promise<void>;
}

/**
 * Calls `fn` until it succeeds, retrying only `ApiError`s with status 429 or 503 and waiting
 * what their `Retry-After` says. Any other error (a 4xx the caller must fix, a 502, a 504, a
 * network failure) is thrown at once, as is the last error when the attempts run out.
 */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 3);
  const defaultDelayMs = options.defaultDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof ApiError) || !RETRYABLE_STATUSES.includes(error.status) || attempt >= attempts) {
        throw error;
      }
      const delayMs = error.retryAfter === undefined ? defaultDelayMs : error.retryAfter * 1000;
      if (delayMs > maxDelayMs) throw error;
      await options.onRetry?.(error, delayMs, attempt);
      await sleep(delayMs, options.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
