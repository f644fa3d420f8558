// Proves the emulator's archive API speaks the real protocol: the official SDKs (opentok-node
// with a legacy key/secret and with a Vonage application, @vonage/video) start, stop, get, list
// and delete archives of a routed session they created, and each SDK reports the emulator's
// refusals (a relayed session: 409/15008; stopping an archive twice: 409/15002).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  APP, LEGACY, emulatorArchives, legacyOpenTok, markConnected, otCall, otCreateSession,
  startEmulator, vonageOpenTok, vonageVideo,
} from './harness.mjs';

const RELAYED = 'Only routed sessions are allowed to initiate archives.';
const STOP_STATE = 'You can only stop an archive that has one of the following statuses: started OR paused OR stopped';

let emulator;
before(async () => { emulator = await startEmulator({ legacy: true, application: true }); });
after(async () => { await emulator?.stop(); });

/** The most recent recorded request for `method` on a path matching `pattern`. */
async function lastRequest(method, pattern) {
  const found = (await emulator.requests()).filter((r) => r.method === method && pattern.test(r.path));
  assert.ok(found.length > 0, `emulator recorded no ${method} ${pattern}`);
  return found.at(-1);
}

// opentok-node in both modes: callback API, owner fields per credential kind.
const opentokSdk = (name, client, owner, ownerFields) => ({
  name,
  owner,
  client,
  ownerFields,
  authHeader: owner === LEGACY.apiKey ? 'x-opentok-auth' : 'authorization',
  routed: { mediaMode: 'routed' },
  relayed: { mediaMode: 'relayed' },
  create: (ot, opts) => otCreateSession(ot, opts),
  start: (ot, sessionId, opts) => otCall(ot, 'startArchive', sessionId, opts),
  stop: (ot, id) => otCall(ot, 'stopArchive', id),
  get: (ot, id) => otCall(ot, 'getArchive', id),
  list: async (ot, sessionId) => {
    const [items, count] = await otCall(ot, 'listArchives', { sessionId });
    return { count, items };
  },
  delete: (ot, id) => otCall(ot, 'deleteArchive', id),
  // startArchive passes a RequestError carrying the body's message; stopArchive an ArchiveError.
  refusedStart: (err) => err instanceof Error && err.message.includes(RELAYED),
  refusedStop: (err) => err instanceof Error && err.message === STOP_STATE,
});

const sdks = [
  opentokSdk('opentok-node (legacy key/secret)', () => legacyOpenTok(emulator.url), LEGACY.apiKey,
    (a) => { assert.equal(a.projectId, LEGACY.apiKey); assert.equal(String(a.partnerId), LEGACY.apiKey); }),
  opentokSdk('opentok-node (Vonage application)', () => vonageOpenTok(emulator.url), APP.applicationId,
    (a) => { assert.equal(a.applicationId, APP.applicationId); assert.equal(a.projectId, undefined); }),
  {
    name: '@vonage/video',
    owner: APP.applicationId,
    client: () => vonageVideo(emulator.url),
    ownerFields: (a) => assert.equal(a.applicationId, APP.applicationId),
    authHeader: 'authorization',
    // @vonage/video takes the wire values for mediaMode ("disabled" = routed).
    routed: { mediaMode: 'disabled' },
    relayed: { mediaMode: 'enabled' },
    create: async (video, opts) => (await video.createSession(opts)).sessionId,
    start: (video, sessionId, opts) => video.startArchive(sessionId, opts),
    stop: (video, id) => video.stopArchive(id),
    get: (video, id) => video.getArchive(id),
    list: (video, sessionId) => video.searchArchives({ sessionId }),
    delete: (video, id) => video.deleteArchive(id),
    // @vonage/server-client does not read error bodies: a VetchError with the status.
    refusedStart: (err) => err?.response?.status === 409 && /status code 409/.test(err.message),
    refusedStop: (err) => err?.response?.status === 409,
  },
];

for (const sdk of sdks) {
  describe(sdk.name, () => {
    test('starts, stops, gets, lists and deletes an archive of a routed session', async () => {
      const client = sdk.client();
      const sessionId = await sdk.create(client, sdk.routed);
      await markConnected(emulator.url, sessionId);

      const started = await sdk.start(client, sessionId, { name: 'conformance', resolution: '1280x720' });
      assert.equal(started.status, 'started');
      assert.equal(started.sessionId, sessionId);
      assert.equal(started.name, 'conformance');
      assert.equal(started.resolution, '1280x720');
      assert.equal(started.outputMode, 'composed');
      assert.equal(started.url, null);
      assert.match(started.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.ok(Math.abs(started.createdAt - Date.now()) < 60_000, 'createdAt is epoch milliseconds');
      sdk.ownerFields(started);
      const startRequest = await lastRequest('POST', /\/archive$/);
      assert.equal(startRequest.path, `/v2/project/${sdk.owner}/archive`);
      assert.ok(startRequest.headers[sdk.authHeader], `start sent no ${sdk.authHeader} header`);
      assert.deepEqual(startRequest.json, { sessionId, name: 'conformance', resolution: '1280x720' });

      const stopped = await sdk.stop(client, started.id);
      assert.equal(stopped.status, 'stopped');
      assert.equal(stopped.id, started.id);

      const got = await sdk.get(client, started.id);
      assert.equal(got.status, 'available');
      assert.ok(got.size > 0, 'an available archive has a size');
      assert.equal(got.url, `${emulator.url}/_emulator/downloads/${started.id}.mp4`);
      const file = await fetch(got.url);
      assert.equal(file.status, 200);
      assert.equal((await file.arrayBuffer()).byteLength, got.size);

      const listed = await sdk.list(client, sessionId);
      assert.equal(listed.count, 1, 'count is the total of the session');
      assert.deepEqual(listed.items.map((a) => a.id), [started.id]);

      await sdk.delete(client, started.id);
      assert.equal((await sdk.get(client, started.id)).status, 'deleted');
      assert.equal((await sdk.list(client, sessionId)).count, 0, 'deleted archives are not listed');
      const held = (await emulatorArchives(emulator.url)).find((a) => a.id === started.id);
      assert.equal(held?.status, 'deleted');
    });

    test('a relayed session is refused with 409/15008 and the SDK reports it', async () => {
      const client = sdk.client();
      const sessionId = await sdk.create(client, sdk.relayed);
      await markConnected(emulator.url, sessionId);

      await assert.rejects(sdk.start(client, sessionId, {}), sdk.refusedStart);
      const refused = await lastRequest('POST', /\/archive$/);
      assert.equal(refused.status, 409);
      assert.equal(refused.json.sessionId, sessionId);
    });

    test('stopping an archive twice is refused with 409/15002 and the SDK reports it', async () => {
      const client = sdk.client();
      const sessionId = await sdk.create(client, sdk.routed);
      await markConnected(emulator.url, sessionId);
      const { id } = await sdk.start(client, sessionId, {});
      await sdk.stop(client, id);

      await assert.rejects(sdk.stop(client, id), sdk.refusedStop);
      assert.equal((await lastRequest('POST', /\/stop$/)).status, 409);
    });

    test('a session without connected clients is refused', async () => {
      const client = sdk.client();
      const sessionId = await sdk.create(client, sdk.routed);

      await assert.rejects(sdk.start(client, sessionId, {}));
      assert.equal((await lastRequest('POST', /\/archive$/)).status, 400);
    });
  });
}
