// The types the generated operations are written in, over the generated `paths`.
import type { FetchResponse, MaybeOptionalInit } from 'openapi-fetch';

import type { paths } from './generated/schema.js';

/** An HTTP method that `path` has in the document. */
export type MethodOf<P extends keyof paths> = {
  [M in keyof paths[P]]: paths[P][M] extends { responses: unknown } ? M : never;
}[keyof paths[P]] &
  string;

/** The request options of one operation: `params` (`path`, `query`), `body`, `headers`, `signal`, … */
export type Init<P extends keyof paths, M extends MethodOf<P>> = MaybeOptionalInit<paths[P], M>;

/** `[init]` when the operation needs something, `[init?]` when it needs nothing. */
export type Args<I> = undefined extends I ? [init?: I] : [init: I];

type Ok<P extends keyof paths, M extends MethodOf<P>> = Extract<
  FetchResponse<paths[P][M] & Record<string | number, unknown>, Init<P, M>, 'application/json'>,
  { error?: never }
>['data'];

/** The success body of one operation (`void` for 204 No Content). */
export type Data<P extends keyof paths, M extends MethodOf<P>> = [NonNullable<Ok<P, M>>] extends [never]
  ? void
  : NonNullable<Ok<P, M>>;

/** Sends one operation: resolves with its success body, rejects with an `ApiError`. */
export type Caller = (method: string, path: string, init: unknown) => Promise<unknown>;
