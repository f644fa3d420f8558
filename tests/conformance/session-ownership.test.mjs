// Proves that `POST /sessions/{sessionId}/tokens` decodes session IDs the way the SDKs do: a session
// owned by another API key or application is refused with 404 `session_not_found` (problem+json),
// while a session that an official SDK created on the emulator with our credentials gets a token.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  APP, FOREIGN_SESSION_ID, LEGACY, decodeSessionId, legacyOpenTok, otCreateSession, startEmulator,
  startService, vonageVideo,
} from './harness.mjs';

/** Asserts a problem+json 404 with code session_not_found. */
function assertSessionNotFound(res) {
  assert.equal(res.status, 404, `expected 404, got ${res.status}: ${JSON.stringify(res.body)}`);
  assert.equal(res.contentType.split(';')[0].trim(), 'application/problem+json');
  assert.equal(res.body.code, 'session_not_found');
  assert.equal(res.body.status, 404);
}

let emulator;
before(async () => { emulator = await startEmulator({ legacy: true, application: true }); });
after(async () => { await emulator?.stop(); });

test('the foreign fixture session really is owned by key 654321', () => {
  assert.equal(decodeSessionId(FOREIGN_SESSION_ID)[1], '654321');
});

describe('legacy mode', () => {
  let service;
  before(async () => { service = await startService({ emulatorUrl: emulator.url, mode: 'legacy' }); });
  after(async () => { await service?.stop(); });

  test("another API key's session is 404 session_not_found", async () => {
    assertSessionNotFound(await service.createToken(FOREIGN_SESSION_ID, {}));
  });

  test("the application's session is 404 session_not_found", async () => {
    const sessionId = (await vonageVideo(emulator.url).createSession({})).sessionId;
    assertSessionNotFound(await service.createToken(sessionId, {}));
  });

  test('a session opentok-node created with our key gets a token', async () => {
    const sessionId = await otCreateSession(legacyOpenTok(emulator.url), { mediaMode: 'routed' });
    const res = await service.createToken(sessionId, { role: 'subscriber' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.sessionId, sessionId);
    assert.equal(res.body.apiKey, LEGACY.apiKey);
  });
});

describe('application mode', () => {
  let service;
  before(async () => { service = await startService({ emulatorUrl: emulator.url, mode: 'application' }); });
  after(async () => { await service?.stop(); });

  test("another API key's session is 404 session_not_found", async () => {
    assertSessionNotFound(await service.createToken(FOREIGN_SESSION_ID, {}));
  });

  test("the legacy project's session is 404 session_not_found", async () => {
    const sessionId = await otCreateSession(legacyOpenTok(emulator.url), { mediaMode: 'routed' });
    assertSessionNotFound(await service.createToken(sessionId, {}));
  });

  test('a session @vonage/video created with our application gets a token', async () => {
    const sessionId = (await vonageVideo(emulator.url).createSession({})).sessionId;
    const res = await service.createToken(sessionId, { role: 'subscriber' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.sessionId, sessionId);
    assert.equal(res.body.applicationId, APP.applicationId);
  });
});
