// Proves that the service's upstream `POST /session/create` is the request the official SDKs send:
// for the same session options, the SDK and `POST /sessions` run against one emulator, and the
// captured requests are compared (method, path, Accept, form content type, form fields and values,
// auth header kind, REST JWT claim names and lifetime, a fresh `jti` per call). Only the known SDK
// quirks of docs/vonage-wire.md §1.4, §2.3 and §8 are allowed, each named in `QUIRKS` below.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  APP, LEGACY, authJwtOf, decodeJwt, decodeSessionId, formOf, legacyOpenTok, mediaType, nowSeconds,
  otCreateSession, startEmulator, startService, verifyHs256, verifyRs256, vonageOpenTok, vonageVideo,
} from './harness.mjs';

const LOCATION = '12.34.56.78';

// One row per set of session options: our request body, and the same options in each SDK's terms
// (@vonage/video takes wire values for mediaMode and has no e2ee/archiveName/archiveResolution).
const CASES = [
  {
    name: 'defaults (routed, manual)',
    ours: {},
    opentok: { mediaMode: 'routed' }, // opentok-node itself defaults to relayed
    video: {},
    expect: { mediaMode: 'routed', archiveMode: 'manual' },
  },
  {
    name: 'relayed',
    ours: { mediaMode: 'relayed' },
    opentok: { mediaMode: 'relayed' },
    video: { mediaMode: 'enabled' },
    expect: { mediaMode: 'relayed', archiveMode: 'manual' },
  },
  {
    name: 'routed, always, archiveName, archiveResolution',
    ours: { mediaMode: 'routed', archiveMode: 'always', archiveName: 'standup', archiveResolution: '1280x720' },
    opentok: { mediaMode: 'routed', archiveMode: 'always', archiveName: 'standup', archiveResolution: '1280x720' },
    video: { mediaMode: 'disabled', archiveMode: 'always' },
    expect: { mediaMode: 'routed', archiveMode: 'always' },
  },
  {
    name: 'location and e2ee',
    ours: { location: LOCATION, e2ee: true },
    opentok: { mediaMode: 'routed', location: LOCATION, e2ee: true },
    video: { location: LOCATION },
    expect: { mediaMode: 'routed', archiveMode: 'manual', location: LOCATION, e2ee: true },
  },
];

// The SDK differences we tolerate, and nothing else. Each takes copies of both forms and may
// delete a field from one of them before the two are compared for equality.
const QUIRKS = {
  // opentok-node sends `e2ee` only when the caller set it; we may send an explicit e2ee=false.
  e2eeOnlyWhenSet(ours, sdk) {
    if (!('e2ee' in sdk) && ours.e2ee === 'false') delete ours.e2ee;
  },
  // @vonage/video sends the literal string `location=null` when no location is given.
  locationNull(ours, sdk) {
    if (sdk.location === 'null') delete sdk.location;
  },
  // @vonage/video has no option for these; they are compared against opentok-node's Vonage mode.
  notExpressibleInVonageVideo(ours) {
    for (const k of ['e2ee', 'archiveName', 'archiveResolution']) delete ours[k];
  },
};

/** Asserts our form equals the SDK's form up to the listed quirks, and our own invariants. */
function assertSameForm(oursReq, sdkReq, quirks) {
  const ours = formOf(oursReq);
  const sdk = formOf(sdkReq);
  assert.ok('p2p.preference' in ours, 'our request must send p2p.preference explicitly');
  assert.ok('archiveMode' in ours, 'our request must send archiveMode explicitly');
  assert.notEqual(ours.location, 'null', 'our request must never send location=null');
  assert.notEqual(ours.location, '', 'our request must not send an empty location');
  const o = { ...ours };
  const s = { ...sdk };
  for (const q of quirks) QUIRKS[q](o, s);
  assert.deepEqual(o, s, `form fields differ\n  ours: ${JSON.stringify(oursReq.form)}\n  sdk:  ${JSON.stringify(sdkReq.form)}`);
}

/** Asserts method, path, Accept, form content type and auth header kind are the SDK's. */
function assertSameEnvelope(ours, sdk, kind) {
  assert.equal(ours.method, 'POST');
  assert.equal(ours.method, sdk.method);
  assert.equal(ours.path, '/session/create');
  assert.equal(ours.path, sdk.path);
  assert.equal(ours.headers.accept, 'application/json');
  assert.equal(ours.headers.accept, sdk.headers.accept);
  assert.equal(mediaType(ours.headers['content-type']), 'application/x-www-form-urlencoded');
  assert.equal(mediaType(ours.headers['content-type']), mediaType(sdk.headers['content-type']));
  assert.equal(ours.status, 200, `emulator answered our request with ${ours.status}`);
  assert.equal(sdk.status, 200, `emulator answered the SDK's request with ${sdk.status}`);
  assert.equal(sdk.auth?.kind, kind, "emulator did not see the SDK's auth kind");
  assert.equal(ours.auth?.kind, kind, 'emulator did not see our auth kind');
  if (kind === 'legacy') {
    assert.ok(ours.headers['x-opentok-auth'], 'legacy mode must send X-OPENTOK-AUTH');
    assert.equal(ours.headers.authorization, undefined, 'legacy mode must not send Authorization');
  } else {
    assert.match(ours.headers.authorization ?? '', /^Bearer \S+$/, 'application mode must send Authorization: Bearer');
    assert.equal(ours.headers['x-opentok-auth'], undefined, 'application mode must not send X-OPENTOK-AUTH');
  }
}

/** Asserts the REST JWT's time claims are sane: issued now, short-lived. */
function assertLifetime(claims) {
  assert.ok(Number.isInteger(claims.iat), 'iat must be an integer');
  assert.ok(Number.isInteger(claims.exp), 'exp must be an integer');
  assert.ok(Math.abs(claims.iat - nowSeconds()) <= 60, `iat ${claims.iat} is not now`);
  assert.ok(claims.exp > claims.iat, 'exp must be after iat');
  assert.ok(claims.exp - claims.iat <= 300, `REST JWT lives ${claims.exp - claims.iat} s (> 300 s)`);
  assert.equal(typeof claims.jti, 'string', 'jti must be a string');
  assert.ok(claims.jti.length > 0, 'jti must not be empty');
}

const sortedKeys = (o) => Object.keys(o).sort();

let emulator;
before(async () => { emulator = await startEmulator({ legacy: true, application: true }); });
after(async () => { await emulator?.stop(); });

/** Runs `fn` alone against the emulator and returns the one create request it caused. */
async function captureCreate(fn) {
  await emulator.clearRequests();
  const result = await fn();
  const reqs = await emulator.createRequests();
  assert.equal(reqs.length, 1, `expected exactly one POST /session/create, got ${reqs.length}`);
  return { result, req: reqs[0] };
}

/** Creates a session through our service with `body`, checks the 201 reply, returns the request. */
async function captureOurs(service, body, expect, owner) {
  const { result: res, req } = await captureCreate(() => service.createSession(body));
  assert.equal(res.status, 201, `POST /sessions answered ${res.status}: ${JSON.stringify(res.body)}`);
  assert.equal(decodeSessionId(res.body.sessionId)[1], owner, 'our session ID is not owned by our credentials');
  assert.equal(res.body.mediaMode, expect.mediaMode);
  assert.equal(res.body.archiveMode, expect.archiveMode);
  assert.equal(res.body.e2ee, expect.e2ee ?? false);
  if (expect.location) assert.equal(res.body.location, expect.location);
  return req;
}

// The SDKs sign a REST JWT per call; the service reuses one for 30 s by default
// (video.rest_jwt_reuse_seconds). 0 compares each call's JWT with the SDK's, jti included.
const FRESH_JWT_PER_CALL = { VONAGE_SESSIONS__VIDEO__REST_JWT_REUSE_SECONDS: '0' };

describe('legacy mode: ours vs opentok-node', () => {
  let service;
  const jtis = [];
  before(async () => { service = await startService({ emulatorUrl: emulator.url, mode: 'legacy', env: FRESH_JWT_PER_CALL }); });
  after(async () => { await service?.stop(); });

  for (const c of CASES) {
    test(c.name, async () => {
      const { req: sdk } = await captureCreate(() => otCreateSession(legacyOpenTok(emulator.url), c.opentok));
      const ours = await captureOurs(service, c.ours, c.expect, LEGACY.apiKey);

      assertSameEnvelope(ours, sdk, 'legacy');
      assertSameForm(ours, sdk, ['e2eeOnlyWhenSet']);

      const sdkJwt = decodeJwt(authJwtOf(sdk));
      const ourToken = authJwtOf(ours);
      const ourJwt = decodeJwt(ourToken);
      assert.ok(verifyHs256(ourToken, LEGACY.apiSecret), 'our X-OPENTOK-AUTH does not verify with the secret');
      assert.equal(ourJwt.header.alg, sdkJwt.header.alg);
      assert.equal(ourJwt.header.typ, sdkJwt.header.typ);
      // opentok-node sends iss, ist, iat, exp; we add jti (optional in the REST reference).
      assert.deepEqual(sortedKeys(ourJwt.payload), [...new Set([...sortedKeys(sdkJwt.payload), 'jti'])].sort());
      assert.deepEqual(sortedKeys(ourJwt.payload), ['exp', 'iat', 'iss', 'ist', 'jti']);
      assert.equal(ourJwt.payload.iss, LEGACY.apiKey);
      assert.equal(ourJwt.payload.iss, sdkJwt.payload.iss);
      assert.equal(ourJwt.payload.ist, 'project');
      assertLifetime(ourJwt.payload);
      jtis.push(ourJwt.payload.jti);
    });
  }

  test('every REST JWT has its own jti', () => {
    assert.ok(jtis.length >= 2, 'need at least two captured requests');
    assert.equal(new Set(jtis).size, jtis.length, `jti repeated: ${jtis.join(', ')}`);
  });
});

describe('application mode: ours vs opentok-node (Vonage) and @vonage/video', () => {
  let service;
  const jtis = [];
  before(async () => { service = await startService({ emulatorUrl: emulator.url, mode: 'application', env: FRESH_JWT_PER_CALL }); });
  after(async () => { await service?.stop(); });

  for (const c of CASES) {
    test(c.name, async () => {
      const { req: opentok } = await captureCreate(() => otCreateSession(vonageOpenTok(emulator.url), c.opentok));
      const { req: video } = await captureCreate(() => vonageVideo(emulator.url).createSession(c.video));
      const ours = await captureOurs(service, c.ours, c.expect, APP.applicationId);

      assertSameEnvelope(ours, opentok, 'application');
      assertSameEnvelope(ours, video, 'application');
      assertSameForm(ours, opentok, ['e2eeOnlyWhenSet']);
      assertSameForm(ours, video, ['locationNull', 'notExpressibleInVonageVideo']);

      const ourToken = authJwtOf(ours);
      const ourJwt = decodeJwt(ourToken);
      const videoJwt = decodeJwt(authJwtOf(video));
      const opentokJwt = decodeJwt(authJwtOf(opentok));
      assert.ok(verifyRs256(ourToken, APP.publicKey), 'our Bearer JWT does not verify with the public key');
      assert.equal(ourJwt.header.alg, 'RS256');
      assert.equal(ourJwt.header.typ, videoJwt.header.typ);
      // @vonage/video sends application_id, iat, exp, jti: ours must be exactly that set.
      assert.deepEqual(sortedKeys(ourJwt.payload), sortedKeys(videoJwt.payload));
      assert.deepEqual(sortedKeys(ourJwt.payload), ['application_id', 'exp', 'iat', 'jti']);
      // opentok-node's Vonage shim adds the legacy iss/ist on top of the same claims.
      assert.deepEqual([...new Set([...sortedKeys(ourJwt.payload), 'iss', 'ist'])].sort(), sortedKeys(opentokJwt.payload));
      assert.equal(ourJwt.payload.application_id, APP.applicationId);
      assert.equal(ourJwt.payload.application_id, videoJwt.payload.application_id);
      assertLifetime(ourJwt.payload);
      jtis.push(ourJwt.payload.jti);
    });
  }

  test('every REST JWT has its own jti', () => {
    assert.ok(jtis.length >= 2, 'need at least two captured requests');
    assert.equal(new Set(jtis).size, jtis.length, `jti repeated: ${jtis.join(', ')}`);
  });
});
