// Proves the emulator's moderation API speaks the real protocol, and that the service's
// moderation requests are the SDKs' requests. The official SDKs (opentok-node with a legacy
// key/secret and with a Vonage application, @vonage/video) list and get streams, force-mute one
// stream and all streams with exclusions, lift it, signal one connection and everyone, and
// force-disconnect clients of a session whose clients connected with the SDK's own tokens; then
// the same calls through the service (`/sessions/{id}/…`) are compared with the SDKs' captured
// requests: method, path, JSON body and REST JWT claim names. Tolerated differences are named
// in `QUIRKS`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  APP, LEGACY, authJwtOf, decodeJwt, legacyOpenTok, otCall, otCreateSession, startEmulator,
  startService, verifyHs256, verifyRs256, vonageOpenTok, vonageVideo,
} from './harness.mjs';

const MODERATE_ENV = {
  VONAGE_SESSIONS__AUTH__ANONYMOUS_SCOPES: '["video:create","video:join","video:moderate"]',
};

let emulator;
let services;
before(async () => {
  emulator = await startEmulator({ legacy: true, application: true });
  services = {
    legacy: await startService({ emulatorUrl: emulator.url, mode: 'legacy', env: MODERATE_ENV }),
    application: await startService({ emulatorUrl: emulator.url, mode: 'application', env: MODERATE_ENV }),
  };
});
after(async () => {
  await services?.legacy?.stop();
  await services?.application?.stop();
  await emulator?.stop();
});

async function control(method, path, body) {
  const res = await fetch(emulator.url + path, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`emulator ${method} ${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Connects a client with `token` and publishes a camera stream: {connectionId, streamId}. */
async function connectAndPublish(sessionId, token, name) {
  const sid = encodeURIComponent(sessionId);
  const { connectionId } = await control('POST', `/_emulator/sessions/${sid}/connections`, { token });
  const { streamId } = await control('POST', `/_emulator/sessions/${sid}/connections/${connectionId}/streams`,
    { videoType: 'camera', name });
  return { connectionId, streamId };
}

const moderation = (sessionId) => control('GET', `/_emulator/sessions/${encodeURIComponent(sessionId)}/moderation`);
const isMuted = (state, streamId) => state.streams.find((s) => s.streamId === streamId).audioMuted;

/** The recorded requests after `since` (an index into the log). */
async function requestsSince(since) {
  return (await emulator.requests()).slice(since);
}

// Each SDK's moderation calls as promises.
const opentokCalls = {
  create: (ot) => otCreateSession(ot, { mediaMode: 'routed' }),
  token: (ot, sid) => ot.generateToken(sid),
  listStreams: async (ot, sid) => (await otCall(ot, 'listStreams', sid)).map((s) => ({ ...s })),
  getStream: (ot, sid, id) => otCall(ot, 'getStream', sid, id),
  muteStream: (ot, sid, id) => otCall(ot, 'forceMuteStream', sid, id),
  muteAll: (ot, sid, excluded) => otCall(ot, 'forceMuteAll', sid, { excludedStreamIds: excluded }),
  disableMuteAll: (ot, sid) => otCall(ot, 'disableForceMute', sid),
  signal: (ot, sid, cid, payload) => otCall(ot, 'signal', sid, cid ?? null, payload),
  disconnect: (ot, sid, cid) => otCall(ot, 'forceDisconnect', sid, cid),
  notFound: (err) => err instanceof Error && /not found/i.test(err.message),
  // opentok-node 2.23.2's getStream JSON.parses the body its api.js already parsed (the answer is
  // application/json, as @vonage/video reads it), so it always fails with a SyntaxError. The
  // request is still made and compared below; the failure is asserted, not hidden.
  getStreamBroken: true,
};

const sdks = [
  { name: 'opentok-node (legacy key/secret)', owner: LEGACY.apiKey, mode: 'legacy', client: () => legacyOpenTok(emulator.url), ...opentokCalls },
  { name: 'opentok-node (Vonage application)', owner: APP.applicationId, mode: 'application', client: () => vonageOpenTok(emulator.url), ...opentokCalls },
  {
    name: '@vonage/video',
    owner: APP.applicationId,
    mode: 'application',
    client: () => vonageVideo(emulator.url),
    create: async (video) => (await video.createSession({ mediaMode: 'disabled' })).sessionId,
    token: (video, sid) => video.generateClientToken(sid),
    listStreams: async (video, sid) => (await video.getStreamInfo(sid)).items,
    getStream: (video, sid, id) => video.getStreamInfo(sid, id),
    muteStream: (video, sid, id) => video.muteStream(sid, id),
    muteAll: (video, sid, excluded) => video.forceMuteAll(sid, excluded),
    disableMuteAll: (video, sid) => video.disableForceMute(sid),
    signal: (video, sid, cid, payload) => video.sendSignal(payload, sid, cid),
    disconnect: (video, sid, cid) => video.disconnectClient(sid, cid),
    notFound: (err) => err?.response?.status === 404,
  },
];

for (const sdk of sdks) {
  describe(sdk.name, () => {
    test('lists, mutes, signals and disconnects against the emulator', async () => {
      const client = sdk.client();
      const sid = await sdk.create(client);
      const a = await connectAndPublish(sid, sdk.token(client, sid), 'alice');
      const b = await connectAndPublish(sid, sdk.token(client, sid), 'bob');
      const c = await connectAndPublish(sid, sdk.token(client, sid), 'carol');

      const streams = await sdk.listStreams(client, sid);
      assert.deepEqual(streams.map((s) => s.id).sort(), [a.streamId, b.streamId, c.streamId].sort());
      if (sdk.getStreamBroken) {
        await assert.rejects(sdk.getStream(client, sid, b.streamId), SyntaxError);
      } else {
        const one = await sdk.getStream(client, sid, b.streamId);
        assert.equal(one.id, b.streamId);
        assert.equal(one.videoType, 'camera');
        assert.equal(one.name, 'bob');
        assert.deepEqual(one.layoutClassList, []);
      }

      await sdk.muteStream(client, sid, a.streamId);
      let state = await moderation(sid);
      assert.ok(isMuted(state, a.streamId) && !isMuted(state, b.streamId));

      await sdk.muteAll(client, sid, [c.streamId]);
      state = await moderation(sid);
      assert.ok(isMuted(state, b.streamId) && !isMuted(state, c.streamId), JSON.stringify(state));
      assert.deepEqual(state.muteAll, { active: true, excludedStreamIds: [c.streamId] });
      await sdk.disableMuteAll(client, sid);
      assert.equal((await moderation(sid)).muteAll, null);

      await sdk.signal(client, sid, b.connectionId, { type: 'nudge', data: 'just you' });
      await sdk.signal(client, sid, undefined, { type: 'chat', data: 'everyone' });
      const { signals } = await moderation(sid);
      assert.deepEqual(signals.at(-2).to, [b.connectionId]);
      assert.equal(signals.at(-2).data, 'just you');
      assert.deepEqual([...signals.at(-1).to].sort(), [a.connectionId, b.connectionId, c.connectionId].sort());

      await sdk.disconnect(client, sid, a.connectionId);
      const live = await control('GET', `/_emulator/sessions/${encodeURIComponent(sid)}/connections`);
      assert.deepEqual(live.connections.map((x) => x.connectionId).sort(), [b.connectionId, c.connectionId].sort());
      await assert.rejects(sdk.disconnect(client, sid, a.connectionId), (err) => sdk.notFound(err));
      if (!sdk.getStreamBroken) {
        await assert.rejects(sdk.getStream(client, sid, a.streamId), (err) => sdk.notFound(err));
      }
    });
  });
}

// The SDK differences tolerated when comparing bodies, and nothing else.
const QUIRKS = {
  // @vonage/video's muteStream posts no body; opentok-node (and we) post `{}`.
  muteStreamNoBody: (call, sdkBody) => call === 'muteStream' && sdkBody === null,
  // opentok-node's disableForceMute sends only `{active:false}`; @vonage/video (and we) also send
  // `excludedStreamIds: []`.
  disableWithoutExclusions: (call, sdkBody, ours) => call === 'disableMuteAll'
    && JSON.stringify(sdkBody) === '{"active":false}' && JSON.stringify(ours) === '{"active":false,"excludedStreamIds":[]}',
};

const sortedKeys = (o) => Object.keys(o).sort();

/** One request of each kind from `sdk`, then the same through `service`, on one session. */
async function compare(sdk, service) {
  const client = sdk.client();
  const sid = await sdk.create(client);
  const x = await connectAndPublish(sid, sdk.token(client, sid), 'x');
  const y = await connectAndPublish(sid, sdk.token(client, sid), 'y');
  const sidPath = encodeURIComponent(sid);

  const calls = [
    ['listStreams', () => sdk.listStreams(client, sid), 'GET', `/sessions/${sidPath}/streams`, undefined],
    ['getStream', () => sdk.getStream(client, sid, x.streamId).catch((err) => {
      if (!(sdk.getStreamBroken && err instanceof SyntaxError)) throw err;
    }), 'GET', `/sessions/${sidPath}/streams/${x.streamId}`, undefined],
    ['muteStream', () => sdk.muteStream(client, sid, x.streamId), 'POST', `/sessions/${sidPath}/streams/${x.streamId}/mute`, undefined],
    ['muteAll', () => sdk.muteAll(client, sid, [y.streamId]), 'POST', `/sessions/${sidPath}/mute`, { excludedStreamIds: [y.streamId] }],
    ['disableMuteAll', () => sdk.disableMuteAll(client, sid), 'POST', `/sessions/${sidPath}/mute`, { active: false }],
    ['signalOne', () => sdk.signal(client, sid, y.connectionId, { type: 't', data: 'd' }), 'POST', `/sessions/${sidPath}/connections/${y.connectionId}/signal`, { type: 't', data: 'd' }],
    ['signalAll', () => sdk.signal(client, sid, undefined, { type: 't', data: 'd' }), 'POST', `/sessions/${sidPath}/signal`, { type: 't', data: 'd' }],
  ];
  for (const [name, viaSdk, method, ourPath, ourBody] of calls) {
    let since = (await emulator.requests()).length;
    await viaSdk();
    const [theirs] = await requestsSince(since);
    since = (await emulator.requests()).length;
    const res = await fetch(service.url + ourPath, {
      method,
      headers: ourBody ? { 'content-type': 'application/json' } : {},
      body: ourBody ? JSON.stringify(ourBody) : undefined,
    });
    assert.ok(res.ok, `${name}: our ${method} ${ourPath} answered ${res.status}: ${await res.text()}`);
    const upstream = await requestsSince(since);
    assert.equal(upstream.length, 1, `${name}: one upstream request, got ${upstream.length}`);
    const [ours] = upstream;
    assert.equal(ours.method, theirs.method, `${name}: method`);
    assert.equal(ours.path, theirs.path, `${name}: path`);
    assert.ok(ours.status < 300 && theirs.status < 300, `${name}: both accepted (${ours.status}, ${theirs.status})`);
    const same = JSON.stringify(ours.json) === JSON.stringify(theirs.json)
      || Object.values(QUIRKS).some((quirk) => quirk(name, theirs.json, ours.json));
    assert.ok(same, `${name}: body ${JSON.stringify(ours.json)} vs the SDK's ${JSON.stringify(theirs.json)}`);

    const ourJwt = authJwtOf(ours);
    const theirJwt = authJwtOf(theirs);
    assert.equal(Boolean(ours.headers['x-opentok-auth']), Boolean(theirs.headers['x-opentok-auth']), `${name}: auth header kind`);
    const ourClaims = decodeJwt(ourJwt).payload;
    if (sdk.mode === 'legacy') {
      assert.ok(verifyHs256(ourJwt, LEGACY.apiSecret), 'our REST JWT verifies with the API secret');
      assert.equal(ourClaims.iss, LEGACY.apiKey);
      assert.equal(ourClaims.ist, 'project');
      // opentok-node sends iss, ist, iat, exp; we add jti (optional in the REST reference).
      const sdkClaims = sortedKeys(decodeJwt(theirJwt).payload);
      assert.deepEqual(sortedKeys(ourClaims), [...new Set([...sdkClaims, 'jti'])].sort(), `${name}: claim names`);
    } else {
      assert.ok(verifyRs256(ourJwt, APP.publicKey), 'our REST JWT verifies with the public key');
      assert.equal(ourClaims.application_id, APP.applicationId);
      // @vonage/video's claim set is the reference; opentok-node's Vonage shim adds iss/ist.
      for (const claim of ['application_id', 'iat', 'exp', 'jti']) assert.ok(claim in ourClaims, `${name}: ${claim}`);
    }
  }
}

describe('the service sends the SDKs\' moderation requests', () => {
  test('legacy: the same as opentok-node', async () => { await compare(sdks[0], services.legacy); });
  test('application: the same as @vonage/video', async () => { await compare(sdks[2], services.application); });
  test('application: the same paths and bodies as opentok-node in Vonage mode', async () => {
    await compare(sdks[1], services.application);
  });
});
