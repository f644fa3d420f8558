// CORS in a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core over
// the DevTools protocol; no browser is ever downloaded) loads a page from one loopback origin and
// calls the service on another port with `fetch`. From the origin in cors.allowed_origins the
// call succeeds; from any other origin the browser itself blocks it (a TypeError, and the
// preflight stops the POST before it is sent, so no session is created).
//
// Needs the built binary (`cargo build`; VONAGE_SESSIONS_BIN overrides the path) and
// /usr/bin/chromium (CHROMIUM_PATH overrides it). Run: node --test tests/browser/

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { CHROMIUM, CHROMIUM_ARGS, requireChromium, startBinary as start } from './harness.mjs';

const LEGACY = { OPENTOK_API_KEY: '123456', OPENTOK_API_SECRET: '1234567890abcdef1234567890abcdef1234567890' };

/** Starts the binary with `args`; resolves with its URL once it prints `listening on http://…`. */
function startBinary(args, env) {
  return start(args, env, (line) => {
    const m = /listening on (http:\/\/\S+)$/.exec(line);
    return m && { url: m[1] };
  }, 20_000);
}

/** A page server on its own loopback port: its origin is what the browser sends as `Origin`. */
function startPageServer() {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>front end</title><p>a front end on its own origin</p>');
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        origin: `http://127.0.0.1:${server.address().port}`,
        stop: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

/** What `fetch('/sessions', POST JSON)` gives the page: a status and body, or the error. */
async function postFromPage(context, pageOrigin, serviceUrl) {
  const page = await context.newPage();
  try {
    await page.goto(`${pageOrigin}/`);
    return await page.evaluate(async (url) => {
      try {
        const res = await fetch(`${url}/sessions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: { role: 'subscriber' } }),
        });
        return { ok: true, status: res.status, body: await res.json() };
      } catch (error) {
        return { ok: false, name: error.name, message: String(error.message) };
      }
    }, serviceUrl);
  } finally {
    await page.close();
  }
}

let allowedPage;
let otherPage;
let emulator;
let service;
let context;
let userDataDir;

before(async () => {
  requireChromium();
  allowedPage = await startPageServer();
  otherPage = await startPageServer();
  emulator = await startBinary(['emulator', '--listen', '127.0.0.1:0'], LEGACY);
  service = await startBinary(['serve', '--listen', '127.0.0.1:0'], {
    ...LEGACY,
    VIDEO_API_URL: emulator.url,
    VONAGE_SESSIONS__AUTH__MODE: 'anonymous',
    VONAGE_SESSIONS__CORS__ALLOWED_ORIGINS: JSON.stringify([allowedPage.origin]),
  });
  userDataDir = mkdtempSync(path.join(tmpdir(), 'vonage-sessions-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await service?.stop();
  await emulator?.stop();
  await allowedPage?.stop();
  await otherPage?.stop();
});

async function upstreamSessions() {
  const res = await fetch(`${emulator.url}/_emulator/sessions`);
  return (await res.json()).length;
}

test('a page on an allowed origin creates a session with fetch', { timeout: 60_000 }, async () => {
  const before = await upstreamSessions();
  const result = await postFromPage(context, allowedPage.origin, service.url);
  assert.equal(result.ok, true, `fetch failed from the allowed origin: ${JSON.stringify(result)}`);
  assert.equal(result.status, 201);
  assert.match(result.body.sessionId, /^[12]_/);
  assert.equal(result.body.role, 'subscriber');
  assert.equal(typeof result.body.token, 'string');
  assert.equal(await upstreamSessions(), before + 1);
});

test('the browser blocks the same call from another origin', { timeout: 60_000 }, async () => {
  const before = await upstreamSessions();
  const result = await postFromPage(context, otherPage.origin, service.url);
  assert.equal(result.ok, false, `the page read an answer it must not: ${JSON.stringify(result)}`);
  assert.equal(result.name, 'TypeError');
  assert.equal(await upstreamSessions(), before, 'the refused preflight stopped the POST');
});

test('servers without an Origin header are never refused', { timeout: 30_000 }, async () => {
  const res = await fetch(`${service.url}/sessions`, { method: 'POST' });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get('access-control-allow-origin'), null);
});
