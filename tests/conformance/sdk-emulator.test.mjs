// Proves the emulator speaks the real Vonage Video protocol: the official SDKs (opentok-node in
// legacy and in Vonage-application mode, @vonage/video) create sessions on it, get back session
// IDs that decode to the right owner and that their own token generators accept, and are refused
// with a recorded 403 when their credentials are wrong.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  APP, LEGACY, decodeJwt, decodeSessionId, decodeT1, otCreateSession, otherPrivateKey,
  legacyOpenTok, startEmulator, verifyHs256, verifyRs256, verifyT1, vonageOpenTok, vonageVideo,
} from './harness.mjs';

let emulator;
before(async () => { emulator = await startEmulator({ legacy: true, application: true }); });
after(async () => { await emulator?.stop(); });

/** The emulator's record of one session, which must exist. */
async function recordedSession(sessionId) {
  const found = (await emulator.sessions()).find((s) => s.sessionId === sessionId);
  assert.ok(found, `emulator has no record of session ${sessionId}`);
  return found;
}

/** The status the emulator recorded for the most recent POST /session/create. */
async function lastCreateStatus() {
  const reqs = await emulator.createRequests();
  assert.ok(reqs.length > 0, 'emulator recorded no POST /session/create');
  return reqs.at(-1).status;
}

// Each SDK: how to create a session with given (SDK-native) options, how it generates a token,
// and how to verify that token.
const sdks = [
  {
    name: 'opentok-node (legacy key/secret)',
    owner: LEGACY.apiKey,
    kind: 'legacy',
    client: () => legacyOpenTok(emulator.url),
    badClient: () => legacyOpenTok(emulator.url, 'not-the-secret-0000000000000000000000000000'),
    create: (ot, opts) => otCreateSession(ot, opts),
    routed: { mediaMode: 'routed' },
    always: { mediaMode: 'routed', archiveMode: 'always', location: '12.34.56.78' },
    checkToken(ot, sessionId) {
      // Ownership is checked by the SDK: it throws for a session of another API key.
      const jwt = ot.generateToken(sessionId, { role: 'moderator' });
      assert.ok(verifyHs256(jwt, LEGACY.apiSecret), 'SDK JWT token does not verify with the secret');
      assert.equal(decodeJwt(jwt).payload.session_id, sessionId);
      const t1 = decodeT1(ot.generateToken(sessionId, { role: 'moderator' }, true));
      assert.ok(verifyT1(t1, LEGACY.apiSecret), 'SDK T1 token does not verify with the secret');
      assert.equal(t1.fields.session_id, sessionId);
    },
  },
  {
    name: 'opentok-node (Vonage application)',
    owner: APP.applicationId,
    kind: 'application',
    client: () => vonageOpenTok(emulator.url),
    badClient: () => vonageOpenTok(emulator.url, otherPrivateKey()),
    create: (ot, opts) => otCreateSession(ot, opts),
    routed: { mediaMode: 'routed' },
    always: { mediaMode: 'routed', archiveMode: 'always', location: '12.34.56.78' },
    checkToken(ot, sessionId) {
      const jwt = ot.generateToken(sessionId, { role: 'moderator' });
      assert.ok(verifyRs256(jwt, APP.publicKey), 'SDK token does not verify with the public key');
      assert.equal(decodeJwt(jwt).payload.session_id, sessionId);
      assert.equal(decodeJwt(jwt).payload.application_id, APP.applicationId);
    },
  },
  {
    name: '@vonage/video',
    owner: APP.applicationId,
    kind: 'application',
    client: () => vonageVideo(emulator.url),
    badClient: () => vonageVideo(emulator.url, otherPrivateKey()),
    create: async (video, opts) => (await video.createSession(opts)).sessionId,
    // @vonage/video takes the wire values for mediaMode ("disabled" = routed).
    routed: { mediaMode: 'disabled' },
    always: { mediaMode: 'disabled', archiveMode: 'always', location: '12.34.56.78' },
    checkToken(video, sessionId) {
      const jwt = video.generateClientToken(sessionId, { role: 'moderator' });
      assert.ok(verifyRs256(jwt, APP.publicKey), 'SDK token does not verify with the public key');
      assert.equal(decodeJwt(jwt).payload.session_id, sessionId);
    },
  },
];

for (const sdk of sdks) {
  describe(sdk.name, () => {
    test('creates a routed session owned by its credentials', async () => {
      const client = sdk.client();
      const sessionId = await sdk.create(client, sdk.routed);

      assert.match(sessionId, /^[12]_[A-Za-z0-9_-]+$/);
      assert.equal(decodeSessionId(sessionId)[1], sdk.owner, 'session ID field [1] is not the owner');
      const rec = await recordedSession(sessionId);
      assert.equal(rec.owner, sdk.owner);
      assert.equal(rec.credential, sdk.kind);
      assert.equal(rec.mediaMode, 'routed');
      assert.equal(rec.archiveMode, 'manual');
      assert.equal(await lastCreateStatus(), 200);
    });

    test('creates an always-archived session with a location hint', async () => {
      const sessionId = await sdk.create(sdk.client(), sdk.always);

      const fields = decodeSessionId(sessionId);
      assert.equal(fields[1], sdk.owner);
      assert.equal(fields[2], '12.34.56.78', 'session ID field [2] is not the location hint');
      const rec = await recordedSession(sessionId);
      assert.equal(rec.mediaMode, 'routed');
      assert.equal(rec.archiveMode, 'always');
      assert.equal(rec.location, '12.34.56.78');
    });

    test("the SDK's own token generator accepts the emulator's session ID", async () => {
      const client = sdk.client();
      const sessionId = await sdk.create(client, sdk.routed);
      sdk.checkToken(client, sessionId);
    });

    test('wrong credentials are refused with a recorded 403', async () => {
      await assert.rejects(sdk.create(sdk.badClient(), sdk.routed));
      assert.equal(await lastCreateStatus(), 403);
    });
  });
}
