// Shared helpers for the official-SDK conformance suite: fixed test credentials, starting the
// `vonage-sessions` binary (emulator and service) on port 0, reading the emulator's control
// endpoints, configuring the official SDKs against it, and decoding/verifying JWT, T1 and
// session IDs with nothing but node:crypto (so the verifiers are independent of the code under test).

import { spawn } from 'node:child_process';
import {
  createHmac, createPublicKey, generateKeyPairSync, timingSafeEqual, verify,
} from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import OpenTok from 'opentok';
import { Video } from '@vonage/video';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Legacy OpenTok project: the key/secret pair the SDKs' own test suites use. */
export const LEGACY = Object.freeze({
  apiKey: '123456',
  apiSecret: '1234567890abcdef1234567890abcdef1234567890',
});

const privateKeyFile = path.join(REPO_ROOT, 'tests/fixtures/application_private_key.pem');
const publicKeyFile = path.join(REPO_ROOT, 'tests/fixtures/application_public_key.pem');

/** Vonage application: any UUID plus the repo's PKCS#8 / SPKI test key pair. */
export const APP = Object.freeze({
  applicationId: '00000000-0000-4000-8000-000000000000',
  privateKeyFile,
  privateKey: readFileSync(privateKeyFile, 'utf8'),
  publicKey: readFileSync(publicKeyFile, 'utf8'),
});

/** A session ID owned by API key 654321 (fixture of the opentok SDK test suites). */
export const FOREIGN_SESSION_ID = '1_MX42NTQzMjF-flNhdCBNYXIgMTUgMTQ6NDI6MjMgUERUIDIwMTR-MC40OTAxMzAyNX4';

export const ROLES = Object.freeze(['publisher', 'subscriber', 'moderator', 'publisheronly']);

let otherKey;
/** A freshly generated RSA key that the emulator has never seen (PKCS#8 PEM). */
export function otherPrivateKey() {
  otherKey ??= generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
  return otherKey;
}

// ---------------------------------------------------------------------------------------------
// Processes under test

/** Path of the built binary; fails loudly when it has not been built. */
export function binaryPath() {
  const bin = process.env.VONAGE_SESSIONS_BIN || path.join(REPO_ROOT, 'target/debug/vonage-sessions');
  if (!existsSync(bin)) {
    throw new Error(`vonage-sessions binary not found at ${bin}: run \`cargo build\` first `
      + '(or point VONAGE_SESSIONS_BIN at a built binary)');
  }
  return bin;
}

/** The caller's environment minus every credential/config variable of ours, plus `extra`. */
function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(OPENTOK_|VONAGE_|VIDEO_API_URL$)/.test(k)) env[k] = v;
  }
  return { ...env, NO_COLOR: '1', ...extra };
}

/**
 * Spawns the binary and resolves once its stdout prints a line matching `ready` (whose first
 * group is the base URL). Rejects, with the tail of stderr, if it exits or is not ready in time.
 */
function startProcess(args, env, ready, timeoutMs = 20_000) {
  const child = spawn(binaryPath(), args, {
    cwd: REPO_ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-8000); });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const describe = () => `\`vonage-sessions ${args.join(' ')}\``;

  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${describe()} printed no ready line within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = ready.exec(line.trim());
      if (m) { clearTimeout(timer); resolve(m[1].replace(/\/+$/, '')); }
    });
    child.once('error', (err) => { clearTimeout(timer); reject(err); });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${describe()} exited (code ${code}, signal ${signal}) before it was ready; `
        + `stderr:\n${stderr}`));
    });
  });

  return url.then((baseUrl) => ({
    url: baseUrl,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  }));
}

function credentialEnv({ legacy, application }) {
  const env = {};
  if (legacy) Object.assign(env, { OPENTOK_API_KEY: LEGACY.apiKey, OPENTOK_API_SECRET: LEGACY.apiSecret });
  if (application) {
    Object.assign(env, {
      VONAGE_APPLICATION_ID: APP.applicationId, VONAGE_PRIVATE_KEY_FILE: APP.privateKeyFile,
    });
  }
  return env;
}

/** Starts `vonage-sessions emulator` knowing the legacy project and/or the application. */
export async function startEmulator({ legacy = true, application = true } = {}) {
  const proc = await startProcess(
    ['emulator', '--listen', '127.0.0.1:0'],
    credentialEnv({ legacy, application }),
    /^vonage-sessions emulator listening on (http:\/\/\S+)$/,
  );
  const control = async (method, p) => {
    const res = await fetch(proc.url + p, { method });
    if (!res.ok) throw new Error(`emulator ${method} ${p} answered ${res.status}`);
    return res.status === 204 ? null : res.text().then((t) => (t ? JSON.parse(t) : null));
  };
  return {
    ...proc,
    requests: () => control('GET', '/_emulator/requests'),
    /** Recorded `POST /session/create` calls, oldest first. */
    createRequests: async () => (await control('GET', '/_emulator/requests'))
      .filter((r) => r.path === '/session/create'),
    clearRequests: () => control('DELETE', '/_emulator/requests'),
    sessions: () => control('GET', '/_emulator/sessions'),
    reset: () => control('POST', '/_emulator/reset'),
  };
}

/**
 * Lets anonymous callers receive every role, so that this suite can compare moderator tokens
 * (config/default.toml `auth.anonymous_roles` leaves moderator out on purpose).
 */
export const ANONYMOUS_GRANT_ENV = Object.freeze({
  VONAGE_SESSIONS__AUTH__ANONYMOUS_ROLES: '["publisher","subscriber","moderator","publisheronly"]',
});

/** Starts `vonage-sessions serve` in one credential mode against `emulatorUrl`. */
export async function startService({ emulatorUrl, mode, legacyFormat, env = {} }) {
  if (mode !== 'legacy' && mode !== 'application') throw new Error(`unknown mode ${mode}`);
  const proc = await startProcess(
    ['serve', '--listen', '127.0.0.1:0'],
    {
      ...credentialEnv({ legacy: mode === 'legacy', application: mode === 'application' }),
      VIDEO_API_URL: emulatorUrl,
      VONAGE_SESSIONS__AUTH__MODE: 'anonymous',
      // Every request here comes from 127.0.0.1: one caller for the rate limiter.
      VONAGE_SESSIONS__RATE_LIMITS__ENABLED: 'false',
      ...ANONYMOUS_GRANT_ENV,
      ...(legacyFormat ? { VONAGE_SESSIONS__TOKENS__LEGACY_FORMAT: legacyFormat } : {}),
      ...env,
    },
    /^vonage-sessions listening on (http:\/\/\S+)$/,
  );
  const post = (p, body) => postJson(proc.url + p, body);
  return {
    ...proc,
    createSession: (body = {}) => post('/sessions', body),
    createToken: (sessionId, body = {}) => post(`/sessions/${encodeURIComponent(sessionId)}/tokens`, body),
  };
}

/** POSTs JSON; returns status, lower-cased content type and the parsed body (or raw text). */
export async function postJson(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* keep the raw text for the failure message */ }
  return { status: res.status, contentType: (res.headers.get('content-type') || '').toLowerCase(), body: parsed };
}

// ---------------------------------------------------------------------------------------------
// Official SDKs pointed at the emulator

/** opentok-node with a legacy key/secret; its third constructor argument takes `apiUrl`. */
export function legacyOpenTok(url, apiSecret = LEGACY.apiSecret) {
  return new OpenTok(LEGACY.apiKey, apiSecret, { apiUrl: url });
}

/**
 * opentok-node in Vonage mode: a UUID key plus a PKCS#8 `-----BEGIN PRIVATE KEY` secret switches
 * it to `Authorization: Bearer` RS256 auth; `apiUrl` overrides its video.api.vonage.com default.
 */
export function vonageOpenTok(url, privateKey = APP.privateKey) {
  return new OpenTok(APP.applicationId, privateKey, { apiUrl: url });
}

/** @vonage/video: credentials first, then client options where `videoHost` is the base URL. */
export function vonageVideo(url, privateKey = APP.privateKey) {
  return new Video({ applicationId: APP.applicationId, privateKey }, { videoHost: url });
}

/** opentok-node's callback `createSession`, as a promise of the session ID. */
export function otCreateSession(ot, opts = {}) {
  return new Promise((resolve, reject) => {
    ot.createSession({ ...opts }, (err, session) => (err ? reject(err) : resolve(session.sessionId)));
  });
}

// ---------------------------------------------------------------------------------------------
// Decoders and verifiers (node:crypto only)

const b64url = (s) => Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');

/** Splits a compact JWS into its parsed header and payload, the signing input and signature. */
export function decodeJwt(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error(`not a compact JWT: ${String(token).slice(0, 40)}…`);
  return {
    header: JSON.parse(b64url(parts[0]).toString('utf8')),
    payload: JSON.parse(b64url(parts[1]).toString('utf8')),
    signingInput: `${parts[0]}.${parts[1]}`,
    signature: b64url(parts[2]),
  };
}

/** True when `token` is HS256 and its HMAC-SHA256 under `secret` matches. */
export function verifyHs256(token, secret) {
  const { header, signingInput, signature } = decodeJwt(token);
  if (header.alg !== 'HS256') return false;
  const mac = createHmac('sha256', secret).update(signingInput).digest();
  return mac.length === signature.length && timingSafeEqual(mac, signature);
}

/** True when `token` is RS256 and verifies under the SPKI PEM `publicKey`. */
export function verifyRs256(token, publicKey) {
  const { header, signingInput, signature } = decodeJwt(token);
  if (header.alg !== 'RS256') return false;
  return verify('RSA-SHA256', Buffer.from(signingInput), createPublicKey(publicKey), signature);
}

/** The `~`-separated fields of a session ID (docs/vonage-wire.md §4): [1] is the owner. */
export function decodeSessionId(sessionId) {
  return b64url(sessionId.slice(2)).toString('utf8').split('~');
}

/**
 * Decodes a `T1==` token the way the SDKs' own test helpers do: strip `T1==`, base64-decode,
 * split at the first `:`; `signedData` is the raw string the signature covers.
 */
export function decodeT1(token) {
  if (!String(token).startsWith('T1==')) throw new Error(`not a T1 token: ${String(token).slice(0, 20)}…`);
  const inner = Buffer.from(token.slice(4), 'base64').toString('utf8');
  const colon = inner.indexOf(':');
  if (colon < 0) throw new Error('T1 token has no `:` separator');
  const head = new URLSearchParams(inner.slice(0, colon));
  const signedData = inner.slice(colon + 1);
  return {
    partnerId: head.get('partner_id'),
    sig: head.get('sig'),
    headKeys: [...head.keys()],
    signedData,
    fields: Object.fromEntries(new URLSearchParams(signedData)),
  };
}

/** True when the T1 signature is the lowercase hex HMAC-SHA1 of the signed data under `secret`. */
export function verifyT1(decoded, secret) {
  return createHmac('sha1', secret).update(decoded.signedData).digest('hex') === decoded.sig;
}

// ---------------------------------------------------------------------------------------------
// Recorded upstream requests

/** A recorded request's form as an object; throws on a repeated key (the API takes one value). */
export function formOf(request) {
  const form = {};
  for (const [k, v] of request.form ?? []) {
    if (Object.hasOwn(form, k)) throw new Error(`form field ${k} sent twice: ${JSON.stringify(request.form)}`);
    form[k] = v;
  }
  return form;
}

/** The REST auth JWT of a recorded request, from X-OPENTOK-AUTH or `Authorization: Bearer`. */
export function authJwtOf(request) {
  const h = request.headers ?? {};
  if (h['x-opentok-auth']) return h['x-opentok-auth'];
  const m = /^Bearer\s+(\S+)$/i.exec(h.authorization ?? '');
  if (m) return m[1];
  throw new Error(`request carries no REST auth JWT; headers: ${Object.keys(h).join(', ')}`);
}

/** Media type of a content-type header value, lower-cased, without parameters. */
export const mediaType = (value) => String(value ?? '').split(';')[0].trim().toLowerCase();

/** Epoch seconds of an RFC 3339 timestamp. */
export const epochSeconds = (rfc3339) => Date.parse(rfc3339) / 1000;

export const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------------------------
// Archives (emulator control endpoints and opentok-node's callback API)

/**
 * Marks a session as having connected clients (or none): the emulator, like the real API,
 * refuses to start an archive of a session nobody is connected to.
 */
export async function markConnected(emulatorUrl, sessionId, connected = true) {
  const url = `${emulatorUrl}/_emulator/sessions/${encodeURIComponent(sessionId)}/connections`;
  const res = await fetch(url, {
    method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ connected }),
  });
  if (!res.ok) throw new Error(`emulator PUT connections answered ${res.status}: ${await res.text()}`);
}

/** Every archive the emulator holds, in wire form, oldest first. */
export async function emulatorArchives(emulatorUrl) {
  const res = await fetch(`${emulatorUrl}/_emulator/archives`);
  if (!res.ok) throw new Error(`emulator GET /_emulator/archives answered ${res.status}`);
  return res.json();
}

/**
 * Calls a callback-style opentok-node method as a promise: rejects with the callback's error,
 * resolves with its single result, or with all results as an array when there are several
 * (`listArchives` passes the archives and the total).
 */
export function otCall(ot, method, ...args) {
  return new Promise((resolve, reject) => {
    ot[method](...args, (err, ...results) => {
      if (err) reject(err);
      else resolve(results.length > 1 ? results : results[0]);
    });
  });
}
