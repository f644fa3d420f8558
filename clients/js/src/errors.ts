import type { components } from './generated/schema.js';

/** The service's problem document (RFC 9457 with `code` and `requestId`). */
export type Problem = components['schemas']['Problem'];

/**
 * The codes the service documents (README "HTTP API"). `code` stays a `string`, so a code added
 * later still reaches the UI; `network_error` and `unexpected_response` are this client's own.
 */
export type ProblemCode =
  | 'invalid_request'
  | 'invalid_json'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'unauthenticated'
  | 'forbidden'
  | 'rate_limited'
  | 'role_not_allowed'
  | 'session_not_found'
  | 'room_not_found'
  | 'not_found'
  | 'method_not_allowed'
  | 'upstream_rejected'
  | 'upstream_auth_failed'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'not_ready'
  | 'overloaded'
  | 'archive_conflict'
  | 'archive_not_found'
  | 'session_not_active'
  | 'room_busy'
  | 'store_unavailable'
  | 'internal'
  | 'request_timeout'
  | 'banned'
  | 'connection_not_found'
  | 'stream_not_found'
  | 'signal_too_large'
  | 'room_full'
  | 'room_not_open'
  | 'room_closed'
  | 'network_error'
  | 'unexpected_response'
  | (string & {});

/** A refused or failed call: the problem's `code`, `status`, `detail`, request ID and `Retry-After`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  /** The problem's stable `code` (`network_error` when no answer came, `unexpected_response` when it was no problem document). */
  readonly code: ProblemCode;
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The problem's `detail`, written for people: show it. */
  readonly detail: string;
  /** The request's `x-request-id`, for support. */
  readonly requestId: string | undefined;
  /** Seconds the service asked to wait (`Retry-After`), when it said. */
  readonly retryAfter: number | undefined;
  /** The problem document as sent, when there was one. */
  readonly problem: Problem | undefined;

  constructor(fields: {
    code: ProblemCode;
    status: number;
    detail: string;
    requestId?: string | undefined;
    retryAfter?: number | undefined;
    problem?: Problem | undefined;
    cause?: unknown;
  }) {
    super(`${fields.code} (${fields.status}): ${fields.detail}`, { cause: fields.cause });
    this.code = fields.code;
    this.status = fields.status;
    this.detail = fields.detail;
    this.requestId = fields.requestId;
    this.retryAfter = fields.retryAfter;
    this.problem = fields.problem;
  }

  /** Builds the error for a non-2xx `response` whose body openapi-fetch parsed into `body`. */
  static fromResponse(response: Response, body: unknown, now: number = Date.now()): ApiError {
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'), now);
    const headerId = response.headers.get('x-request-id') ?? undefined;
    if (isProblem(body)) {
      return new ApiError({
        code: body.code,
        status: response.status,
        detail: body.detail,
        requestId: body.requestId ?? headerId,
        retryAfter,
        problem: body,
      });
    }
    return new ApiError({
      code: 'unexpected_response',
      status: response.status,
      detail: `The service answered ${response.status} ${response.statusText} without a problem document.`,
      requestId: headerId,
      retryAfter,
    });
  }
}

function isProblem(body: unknown): body is Problem {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  return typeof b.code === 'string' && typeof b.detail === 'string';
}

/**
 * `Retry-After` in seconds: delta-seconds, or an HTTP date (rounded up, at least 0). Undefined
 * when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}
