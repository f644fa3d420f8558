// @vonage-sessions/client: a typed client for the vonage-sessions HTTP API. The operations and
// types are generated from the service's openapi.json (scripts/generate.mjs); the rest is the
// error type, the bearer-token hook and the retry helper.
export { createClient, type Client, type ClientOptions, type TokenProvider } from './client.js';
export { ApiError, parseRetryAfter, type Problem, type ProblemCode } from './errors.js';
export { withRetry, RETRYABLE_STATUSES, type RetryOptions } from './retry.js';
export { operations } from './generated/operations.js';
export type { components, operations as Operations, paths } from './generated/schema.js';

import type { components } from './generated/schema.js';
/** What `joinRoom` returns: the three values a Vonage client SDK needs, and more. */
export type JoinRoomResponse = components['schemas']['JoinRoomResponse'];
