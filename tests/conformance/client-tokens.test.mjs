// Proves that the client tokens the service mints are the tokens the official SDKs mint, for every
// role: legacy HS256 JWTs carry opentok-node's claims with the same values, `T1==` tokens carry
// opentok-node's T1 fields under a valid HMAC-SHA1 signature, and application RS256 JWTs have
// exactly @vonage/video's claim set. Signatures are checked with node:crypto; `expiresAt` must
// agree with the token's own expiry.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  APP, LEGACY, ROLES, decodeJwt, decodeT1, epochSeconds, legacyOpenTok, nowSeconds, otCreateSession,
  startEmulator, startService, verifyHs256, verifyRs256, verifyT1, vonageVideo,
} from './harness.mjs';

const TTL = 3600;
const DATA = 'name=Johnny&x=1';
const CLASSES = ['focus', 'big'];
const sortedKeys = (o) => Object.keys(o).sort();

/** Our token request body and the same options in opentok-node / @vonage/video terms. */
const ourOptions = (role) => ({ role, data: DATA, initialLayoutClassList: CLASSES, ttlSeconds: TTL });
const sdkOptions = (role) => ({ role, data: DATA, initialLayoutClassList: CLASSES, expireTime: nowSeconds() + TTL });

/** Requests a token from the service and checks the 201 envelope. */
async function mint(service, sessionId, body, owner) {
  const res = await service.createToken(sessionId, body);
  assert.equal(res.status, 201, `POST /sessions/{id}/tokens answered ${res.status}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.sessionId, sessionId);
  assert.equal(res.body.applicationId, owner);
  assert.equal(res.body.apiKey, owner);
  assert.equal(typeof res.body.token, 'string');
  return res.body;
}

/** `expiresAt` (RFC 3339) names the same second as the token's own expiry. */
function assertExpiresAt(body, exp) {
  assert.ok(!Number.isNaN(epochSeconds(body.expiresAt)), `expiresAt is not a timestamp: ${body.expiresAt}`);
  assert.ok(Math.abs(epochSeconds(body.expiresAt) - exp) < 1, `expiresAt ${body.expiresAt} disagrees with exp ${exp}`);
}

/** Equal within one second (two clock reads of the same token). */
const assertAbout = (actual, expected, what) => assert.ok(Math.abs(actual - expected) <= 1, `${what}: ${actual}, expected ${expected}`);
/** Issued now, with room for a slow machine. */
const assertNow = (actual, what) => assert.ok(Math.abs(actual - nowSeconds()) <= 10, `${what} ${actual} is not now`);

let emulator;
before(async () => { emulator = await startEmulator({ legacy: true, application: true }); });
after(async () => { await emulator?.stop(); });

describe('legacy JWT tokens vs opentok-node generateToken', () => {
  // The claims opentok-node 2.23 puts in a legacy JWT token that any verifier relies on. The SDK
  // also keeps the T1 names create_time/expire_time as claims; that is not required of us.
  const REQUIRED = ['iss', 'ist', 'iat', 'exp', 'scope', 'session_id', 'role', 'nonce',
    'connection_data', 'initial_layout_class_list'];
  const AGREE = ['iss', 'ist', 'scope', 'session_id', 'role', 'connection_data', 'initial_layout_class_list'];
  let service;
  let ot;
  let sessionId;
  before(async () => {
    service = await startService({ emulatorUrl: emulator.url, mode: 'legacy' });
    ot = legacyOpenTok(emulator.url);
    sessionId = await otCreateSession(ot, { mediaMode: 'routed' });
  });
  after(async () => { await service?.stop(); });

  for (const role of ROLES) {
    test(`role ${role}`, async () => {
      const body = await mint(service, sessionId, ourOptions(role), LEGACY.apiKey);
      assert.equal(body.role, role);
      assert.ok(verifyHs256(body.token, LEGACY.apiSecret), 'our token does not verify (HS256, API secret)');

      const ours = decodeJwt(body.token);
      const sdk = decodeJwt(ot.generateToken(sessionId, sdkOptions(role)));
      assert.equal(ours.header.alg, sdk.header.alg);
      assert.equal(ours.header.typ, sdk.header.typ);
      for (const k of REQUIRED) {
        assert.ok(k in sdk.payload, `opentok-node no longer sends ${k}: update this suite`);
        assert.ok(k in ours.payload, `our token lacks claim ${k}`);
      }
      for (const k of AGREE) assert.deepEqual(ours.payload[k], sdk.payload[k], `claim ${k} differs from the SDK's`);
      assert.equal(ours.payload.iss, LEGACY.apiKey);
      assert.equal(ours.payload.ist, 'project');
      assert.equal(ours.payload.scope, 'session.connect');
      assert.equal(ours.payload.initial_layout_class_list, 'focus big');
      assertNow(ours.payload.iat, 'iat');
      assertAbout(ours.payload.exp - ours.payload.iat, TTL, 'token lifetime');
      assertExpiresAt(body, ours.payload.exp);
    });
  }

  test('defaults: publisher for 24 h, no connection_data', async () => {
    const body = await mint(service, sessionId, {}, LEGACY.apiKey);
    const ours = decodeJwt(body.token).payload;
    const sdk = decodeJwt(ot.generateToken(sessionId)).payload;
    assert.equal(body.role, 'publisher');
    assert.equal(ours.role, sdk.role);
    assert.ok(!('connection_data' in ours), 'connection_data must be absent when no data is given');
    assert.ok(!('connection_data' in sdk));
    assertAbout(ours.exp - ours.iat, 86400, 'default token lifetime');
    assertExpiresAt(body, ours.exp);
  });

  test('POST /sessions returns a token for the session it created', async () => {
    const res = await service.createSession({ token: { role: 'subscriber', data: DATA } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.ok(verifyHs256(res.body.token, LEGACY.apiSecret));
    const claims = decodeJwt(res.body.token).payload;
    assert.equal(claims.session_id, res.body.sessionId);
    assert.equal(claims.role, 'subscriber');
    assert.equal(res.body.role, 'subscriber');
    assert.equal(claims.connection_data, DATA);
    // opentok-node accepts our session as its own (it throws for another key's session).
    assert.doesNotThrow(() => ot.generateToken(res.body.sessionId));
    assertExpiresAt(res.body, claims.exp);
  });
});

describe('legacy T1 tokens vs opentok-node generateToken(…, true)', () => {
  const REQUIRED = ['session_id', 'create_time', 'expire_time', 'role', 'nonce', 'connection_data'];
  const AGREE = ['session_id', 'role', 'connection_data', 'initial_layout_class_list'];
  let service;
  let ot;
  let sessionId;
  before(async () => {
    service = await startService({ emulatorUrl: emulator.url, mode: 'legacy', legacyFormat: 't1' });
    ot = legacyOpenTok(emulator.url);
    sessionId = await otCreateSession(ot, { mediaMode: 'routed' });
  });
  after(async () => { await service?.stop(); });

  test('the T1 verifier accepts the opentok-token reference vector (self-check)', () => {
    const vector = 'T1==cGFydG5lcl9pZD0xMjM0NTYmc2lnPWRmOTRhNjQ1NTlhY2MwNjFkN2EzNzUyYTZmYzY5NDkzZTkzOGMxOTE6c2Vzc2lvbl9pZD0xX01YNHhNak0wTlRaLWZsTmhkQ0JOWVhJZ01UVWdNVFE2TkRJNk1qTWdVRVJVSURJd01UUi1NQzQwT1RBeE16QXlOWDQmY3JlYXRlX3RpbWU9MTQyNDIyMTAxMyZub25jZT0wLjM5NDI2MDk4ODEwNTA4ODUmcm9sZT1tb2RlcmF0b3ImZXhwaXJlX3RpbWU9MTQyNDMwNzQxMyZjb25uZWN0aW9uX2RhdGE9JTdCJTIybmFtZSUyMiUzQSUyMnZhbHVlJTIyJTdE';
    const t1 = decodeT1(vector);
    assert.equal(t1.sig, 'df94a64559acc061d7a3752a6fc69493e938c191');
    assert.ok(verifyT1(t1, LEGACY.apiSecret));
    assert.ok(!verifyT1({ ...t1, signedData: `${t1.signedData}x` }, LEGACY.apiSecret));
    assert.equal(t1.fields.connection_data, '{"name":"value"}');
  });

  for (const role of ROLES) {
    test(`role ${role}`, async () => {
      const body = await mint(service, sessionId, ourOptions(role), LEGACY.apiKey);
      assert.equal(body.role, role);
      assert.ok(body.token.startsWith('T1=='), `not a T1 token: ${body.token.slice(0, 12)}…`);

      const ours = decodeT1(body.token);
      assert.deepEqual(ours.headKeys, ['partner_id', 'sig']);
      assert.equal(ours.partnerId, LEGACY.apiKey);
      assert.match(ours.sig, /^[0-9a-f]{40}$/);
      assert.ok(verifyT1(ours, LEGACY.apiSecret), 'our T1 signature is not HMAC-SHA1(secret, data)');

      const sdk = decodeT1(ot.generateToken(sessionId, sdkOptions(role), true));
      assert.ok(verifyT1(sdk, LEGACY.apiSecret), "the SDK's T1 does not verify: the verifier is wrong");
      for (const k of REQUIRED) {
        assert.ok(k in sdk.fields, `opentok-node's T1 no longer has ${k}: update this suite`);
        assert.ok(k in ours.fields, `our T1 lacks field ${k}`);
      }
      for (const k of AGREE) assert.equal(ours.fields[k], sdk.fields[k], `T1 field ${k} differs from the SDK's`);
      assert.match(ours.fields.create_time, /^\d+$/);
      assert.match(ours.fields.expire_time, /^\d+$/);
      assert.ok(ours.fields.nonce.length > 0, 'nonce must not be empty');
      const created = Number(ours.fields.create_time);
      const expires = Number(ours.fields.expire_time);
      assertNow(created, 'create_time');
      assertAbout(expires - created, TTL, 'token lifetime');
      assertExpiresAt(body, expires);
    });
  }
});

describe('application tokens vs @vonage/video generateClientToken', () => {
  const AGREE = ['application_id', 'scope', 'session_id', 'role', 'initial_layout_class_list', 'sub', 'acl',
    'connection_data'];
  let service;
  let video;
  let sessionId;
  before(async () => {
    service = await startService({ emulatorUrl: emulator.url, mode: 'application' });
    video = vonageVideo(emulator.url);
    sessionId = (await video.createSession({})).sessionId;
  });
  after(async () => { await service?.stop(); });

  for (const role of ROLES) {
    test(`role ${role}`, async () => {
      const body = await mint(service, sessionId, ourOptions(role), APP.applicationId);
      assert.equal(body.role, role);
      assert.ok(verifyRs256(body.token, APP.publicKey), 'our token does not verify (RS256, application key)');

      const ours = decodeJwt(body.token);
      const sdk = decodeJwt(video.generateClientToken(sessionId, sdkOptions(role)));
      assert.equal(ours.header.alg, 'RS256');
      assert.equal(ours.header.typ, sdk.header.typ);
      assert.deepEqual(sortedKeys(ours.payload), sortedKeys(sdk.payload), 'claim set differs from @vonage/video');
      for (const k of AGREE) assert.deepEqual(ours.payload[k], sdk.payload[k], `claim ${k} differs from the SDK's`);
      assert.equal(ours.payload.application_id, APP.applicationId);
      assert.equal(ours.payload.sub, 'video');
      assert.deepEqual(ours.payload.acl, { paths: { '/session/**': {} } });
      assert.equal(typeof ours.payload.jti, 'string');
      assertNow(ours.payload.iat, 'iat');
      assertAbout(ours.payload.exp - ours.payload.iat, TTL, 'token lifetime');
      assertExpiresAt(body, ours.payload.exp);
    });
  }

  test('defaults: publisher for 24 h, same claim set without connection_data', async () => {
    const body = await mint(service, sessionId, {}, APP.applicationId);
    const ours = decodeJwt(body.token).payload;
    const sdk = decodeJwt(video.generateClientToken(sessionId)).payload;
    assert.deepEqual(sortedKeys(ours), sortedKeys(sdk));
    assert.equal(body.role, 'publisher');
    assert.equal(ours.role, sdk.role);
    assert.equal(ours.initial_layout_class_list, sdk.initial_layout_class_list);
    assert.ok(!('connection_data' in ours));
    assertAbout(ours.exp - ours.iat, 86400, 'default token lifetime');
    assertExpiresAt(body, ours.exp);
  });

  test('POST /sessions returns a token for the session it created', async () => {
    const res = await service.createSession({ token: { role: 'moderator' } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.ok(verifyRs256(res.body.token, APP.publicKey));
    const claims = decodeJwt(res.body.token).payload;
    assert.equal(claims.session_id, res.body.sessionId);
    assert.equal(claims.role, 'moderator');
    assert.equal(res.body.role, 'moderator');
    assertExpiresAt(res.body, claims.exp);
  });
});
