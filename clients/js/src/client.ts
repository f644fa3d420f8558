import createFetchClient, { type Middleware } from 'openapi-fetch';

import { ApiError } from './errors.js';
import { bindOperations } from './generated/operations.js';
import type { paths } from './generated/schema.js';

/** A bearer token, or where to get one for each call (e.g. your identity provider's current ID token). */
export type TokenProvider = string | (() => string | null | undefined | Promise<string | null | undefined>);

export interface ClientOptions {
  /** The service's base URL, e.g. `https://sessions.example.com` (no trailing path). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when it yields a token (auth.mode = "jwt"). */
  token?: TokenProvider;
  /** Another `fetch` (tests, polyfills). */
  fetch?: typeof globalThis.fetch;
  /** Headers for every call. */
  headers?: Record<string, string>;
}

/** The client: one method per operation of the service's OpenAPI document. */
export type Client = ReturnType<typeof bindOperations>;

/**
 * Makes a client. Each method resolves with the operation's success body and rejects with an
 * `ApiError` (the problem's `code`, `status`, `detail`, `requestId`, `retryAfter`).
 */
export function createClient(options: ClientOptions): Client {
  const inner = createFetchClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
  });
  const provider = options.token;
  if (provider !== undefined) {
    const auth: Middleware = {
      async onRequest({ request }) {
        const token = typeof provider === 'function' ? await provider() : provider;
        if (token) request.headers.set('authorization', `Bearer ${token}`);
        return request;
      },
    };
    inner.use(auth);
  }
  const request = inner.request as unknown as (
    method: string,
    path: string,
    init?: unknown,
  ) => Promise<{ data?: unknown; error?: unknown; response: Response }>;
  return bindOperations(async (method, path, init) => {
    let result;
    try {
      result = await request(method, path, init);
    } catch (cause) {
      if (cause instanceof DOMException && cause.name === 'AbortError') throw cause;
      throw new ApiError({
        code: 'network_error',
        status: 0,
        detail: 'The service could not be reached. Check the connection and try again.',
        cause,
      });
    }
    if (!result.response.ok) throw ApiError.fromResponse(result.response, result.error);
    return result.data;
  });
}
