// The built package (dist/) against the real service: `serve` in front of the emulator binary,
// over loopback HTTP. Needs `cargo build` and `npm run build`. Run: npm test --prefix clients/js
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ApiError, createClient, operations, parseRetryAfter, withRetry } from '../dist/index.js';
import { LEGACY, startBinary } from './service.mjs';

let emulator;
let service;
let limited;

const SERVE_ENV = (emulatorUrl, extra = {}) => ({
  ...LEGACY,
  VIDEO_API_URL: emulatorUrl,
  VONAGE_SESSIONS__AUTH__MODE: 'anonymous',
  // One call per try, and no breaker, so the faults below decide each answer.
  VONAGE_SESSIONS__VIDEO__MAX_RETRIES: '0',
  VONAGE_SESSIONS__VIDEO__BREAKER_FAILURE_THRESHOLD: '1000',
  ...extra,
});

before(async () => {
  emulator = await startBinary(['emulator', '--listen', '127.0.0.1:0'], LEGACY);
  service = await startBinary(['serve', '--listen', '127.0.0.1:0'], SERVE_ENV(emulator.url));
  limited = await startBinary(['serve', '--listen', '127.0.0.1:0'], SERVE_ENV(emulator.url, {
    VONAGE_SESSIONS__RATE_LIMITS__CREATE_BURST: '1',
    VONAGE_SESSIONS__RATE_LIMITS__CREATE_PER_MINUTE: '1',
  }));
});

after(async () => {
  await limited?.stop();
  await service?.stop();
  await emulator?.stop();
});

async function setFaults(faults) {
  const res = faults
    ? await fetch(`${emulator.url}/_emulator/faults`, {
      method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify(faults),
    })
    : await fetch(`${emulator.url}/_emulator/faults`, { method: 'DELETE' });
  assert.ok(res.ok, `the emulator refused the faults: ${res.status}`);
}

test('every operation of openapi.json has a method', () => {
  const api = createClient({ baseUrl: 'http://127.0.0.1:1' });
  assert.ok(Object.keys(operations).length >= 10);
  for (const name of Object.keys(operations)) assert.equal(typeof api[name], 'function', name);
});

test('joinRoom: the first caller creates the room, the next joins the same session', async () => {
  const api = createClient({ baseUrl: service.url });
  const room = `standup-${Date.now()}`;
  const first = await api.joinRoom({ params: { path: { room } }, body: { token: { data: 'name=Ada' } } });
  const second = await api.joinRoom({ params: { path: { room } } });
  assert.equal(first.created, true);
  assert.equal(second.created, false);
  assert.equal(second.sessionId, first.sessionId);
  assert.equal(first.applicationId, LEGACY.OPENTOK_API_KEY);
  assert.notEqual(second.token, first.token);
  const got = await api.getRoom({ params: { path: { room } } });
  assert.equal(got.sessionId, first.sessionId);
});

test('a refusal is an ApiError with the problem code, status, detail and request ID', async () => {
  const api = createClient({ baseUrl: service.url, headers: { 'x-request-id': 'client-test-1' } });
  const error = await api.joinRoom({ params: { path: { room: '-bad room-' } } }).catch((e) => e);
  assert.ok(error instanceof ApiError, String(error));
  assert.equal(error.code, 'invalid_request');
  assert.equal(error.status, 400);
  assert.equal(error.requestId, 'client-test-1');
  assert.match(error.detail, /room/);
  assert.equal(error.retryAfter, undefined);
  assert.equal(error.problem.code, 'invalid_request');

  const missing = await api.getRoom({ params: { path: { room: `never-${Date.now()}` } } }).catch((e) => e);
  assert.equal(missing.code, 'room_not_found');
  assert.equal(missing.status, 404);
  assert.match(missing.requestId, /\S/, 'the service names a request ID even when the caller sent none');
});

test('the token provider is asked for every call and sent as a bearer token', async () => {
  const seen = [];
  const recording = (request) => {
    seen.push(request.headers.get('authorization'));
    return fetch(request);
  };
  let calls = 0;
  const api = createClient({ baseUrl: service.url, fetch: recording, token: async () => `id-token-${++calls}` });
  await api.livez();
  await api.readyz();
  assert.deepEqual(seen, ['Bearer id-token-1', 'Bearer id-token-2']);

  const none = createClient({ baseUrl: service.url, fetch: recording, token: () => undefined });
  await none.livez();
  assert.equal(seen.at(-1), null, 'no token, no Authorization header');
});

test('503 upstream_unavailable carries Retry-After, and withRetry waits it out', async () => {
  const api = createClient({ baseUrl: service.url });
  await setFaults({ errorRate: 1, errorStatus: 503 });
  try {
    const error = await api.createSession().catch((e) => e);
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, 503);
    assert.equal(error.code, 'upstream_unavailable');
    assert.equal(typeof error.retryAfter, 'number');

    const waits = [];
    const started = Date.now();
    const created = await withRetry(() => api.createSession(), {
      attempts: 3,
      onRetry: (e, delayMs) => {
        waits.push([e.code, delayMs]);
        return setFaults(null); // the next try finds Vonage healthy again
      },
    });
    assert.match(created.sessionId, /^[12]_/);
    assert.deepEqual(waits, [['upstream_unavailable', error.retryAfter * 1000]]);
    assert.ok(Date.now() - started >= error.retryAfter * 1000 - 50, 'it waited what Retry-After said');
  } finally {
    await setFaults(null);
  }
});

test('429 rate_limited: retryAfter from the header; a wait longer than maxDelayMs is not slept', async () => {
  const api = createClient({ baseUrl: limited.url });
  await api.createSession();
  const error = await api.createSession().catch((e) => e);
  assert.ok(error instanceof ApiError, String(error));
  assert.equal(error.status, 429);
  assert.equal(error.code, 'rate_limited');
  assert.ok(error.retryAfter >= 1, `retryAfter ${error.retryAfter}`);

  let calls = 0;
  const started = Date.now();
  const thrown = await withRetry(() => { calls++; return api.createSession(); }, { maxDelayMs: 500 })
    .catch((e) => e);
  assert.equal(thrown.code, 'rate_limited');
  assert.equal(calls, 1);
  assert.ok(Date.now() - started < 2000);
});

test('withRetry retries 429/503 only, at most `attempts` times', async () => {
  const make = (status) => new ApiError({ code: `c${status}`, status, detail: 'd', retryAfter: 0 });
  for (const status of [400, 401, 403, 404, 409, 500, 502, 504, 0]) {
    let calls = 0;
    const error = await withRetry(() => { calls++; return Promise.reject(make(status)); }).catch((e) => e);
    assert.equal(error.status, status);
    assert.equal(calls, 1, `status ${status} is not retried`);
  }
  for (const status of [429, 503]) {
    let calls = 0;
    const error = await withRetry(() => { calls++; return Promise.reject(make(status)); }, { attempts: 4 })
      .catch((e) => e);
    assert.equal(error.status, status);
    assert.equal(calls, 4, `status ${status} is retried`);
  }
  let calls = 0;
  const plain = await withRetry(() => { calls++; return Promise.reject(new TypeError('boom')); }).catch((e) => e);
  assert.equal(plain.name, 'TypeError');
  assert.equal(calls, 1);
});

test('no answer at all is a network_error with status 0', async () => {
  const api = createClient({ baseUrl: 'http://127.0.0.1:1' });
  const error = await api.livez().catch((e) => e);
  assert.ok(error instanceof ApiError, String(error));
  assert.equal(error.code, 'network_error');
  assert.equal(error.status, 0);
});

test('parseRetryAfter reads delta-seconds and HTTP dates', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('7', now), 7);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:03 GMT', now), 3);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});
