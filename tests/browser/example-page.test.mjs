// The example room page (examples/web, built into examples/web/dist) in headless Chromium against
// `vonage-sessions dev --example-page`: the page joins a room through the service with
// @vonage-sessions/client, then the official Vonage browser SDK (@vonage/client-sdk-video, served
// from the page's own origin) connects. Vonage's servers are not reachable from here, so every
// request leaving loopback is intercepted (Playwright routing) and none goes out: the test asserts
// that the SDK asked Vonage for the session the service issued for the room, with the token the
// service issued, and then answers it with an error the page must show.
//
// Needs the built binary (`cargo build`; VONAGE_SESSIONS_BIN overrides the path), the built page
// (npm ci + npm run build in clients/js, then in examples/web) and /usr/bin/chromium
// (CHROMIUM_PATH overrides it). Run: node --test tests/browser/

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { BIN, CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, requireChromium, startBinary } from './harness.mjs';

const PAGE_DIR = path.join(REPO_ROOT, 'examples/web/dist');
// Where the SDK (2.35) goes on connect: the config service, then "anvil", the session-info API.
const VONAGE_HOSTS = new Set(['config.opentok.com', 'anvil.opentok.com', 'hlg.tokbox.com']);
const REFUSAL = 'emulated Vonage: this test answers instead of the real API';

/** Starts `vonage-sessions dev` with the example page; resolves with both URLs. */
function startDev() {
  const index = path.join(PAGE_DIR, 'index.html');
  if (!existsSync(index)) {
    throw new Error(`${index} is missing: build the page: npm ci --prefix clients/js && npm run build --prefix clients/js `
      + '&& npm ci --prefix examples/web && npm run build --prefix examples/web');
  }
  let serviceUrl;
  return startBinary([
    'dev', '--listen', '127.0.0.1:0', '--example-page', PAGE_DIR, '--example-listen', '127.0.0.1:0',
  ], {}, (line) => {
    const service = /^vonage-sessions listening on (http:\/\/\S+)$/.exec(line);
    if (service) serviceUrl = service[1];
    const page = /^example page listening on (http:\/\/\S+?)\/? /.exec(line);
    return page && serviceUrl && { serviceUrl, pageUrl: `${page[1]}/` };
  }, 30_000);
}

let dev;
let browser;

before(async () => {
  requireChromium();
  dev = await startDev();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  await dev?.stop();
});

/**
 * A fresh browser context (its own cookies and storage: another person) on the page. Every
 * request that would leave loopback is recorded and answered here, never sent.
 */
async function openPage() {
  const context = await browser.newContext();
  const outgoing = [];
  const loaded = [];
  await context.route('**/*', async (route) => {
    const request = route.request();
    const url = new URL(request.url());
    if (url.hostname === '127.0.0.1') {
      loaded.push(url);
      return route.continue();
    }
    outgoing.push({ url, method: request.method(), headers: request.headers() });
    if (url.hostname === 'config.opentok.com') {
      return route.fulfill({ status: 200, contentType: 'application/json', body: '{}' });
    }
    if (url.hostname === 'anvil.opentok.com') {
      // What anvil sends when it refuses a session: a list with an error node.
      return route.fulfill({
        status: 200,
        contentType: 'application/json',
        headers: { 'access-control-allow-origin': '*' },
        body: JSON.stringify([{ error: { code: 403, errorMessage: { message: REFUSAL } } }]),
      });
    }
    return route.fulfill({ status: 204, headers: { 'access-control-allow-origin': '*' } });
  });
  const page = await context.newPage();
  await page.goto(dev.pageUrl);
  await page.waitForSelector('body[data-ready="true"]');
  return { context, page, outgoing, loaded };
}

/** Fills the form and joins; resolves with the service's answer to the page's join call. */
async function joinFromPage(page, room, name) {
  await page.fill('#room', room);
  await page.fill('#name', name);
  const answer = page.waitForResponse((r) => r.request().method() === 'POST'
    && new URL(r.url()).pathname === `/rooms/${encodeURIComponent(room)}/join`);
  await page.click('#join-button');
  const response = await answer;
  return { status: response.status(), body: await response.json() };
}

/** Waits until the SDK has asked anvil for session info; returns that request. */
async function anvilRequest(opened) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = opened.outgoing.find((r) => r.url.hostname === 'anvil.opentok.com');
    if (found) return found;
    if (Date.now() > deadline) {
      throw new Error(`the SDK never asked anvil; it asked: ${opened.outgoing.map((r) => r.url.href).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

test('the page joins through the service and the official SDK asks Vonage for that session with our token',
  { timeout: 90_000 }, async () => {
    const room = `standup-${Date.now()}`;
    const first = await openPage();
    const second = await openPage();
    try {
      const joined = await joinFromPage(first.page, room, 'Ada');
      assert.equal(joined.status, 201, JSON.stringify(joined.body));
      assert.equal(joined.body.created, true);

      // The session the service holds for the room is the one the page got.
      const held = await (await fetch(`${dev.serviceUrl}/rooms/${room}`)).json();
      assert.equal(held.sessionId, joined.body.sessionId);
      assert.equal(await first.page.textContent('#session-id'), joined.body.sessionId);

      // The SDK asked anvil for exactly that session, authenticated with exactly that token.
      const anvil = await anvilRequest(first);
      assert.equal(anvil.method, 'GET');
      assert.equal(anvil.url.pathname, `/session/${joined.body.sessionId}`);
      assert.equal(anvil.url.searchParams.get('extended'), 'true');
      assert.equal(anvil.headers['x-opentok-auth'], joined.body.token);
      const token = claims(joined.body.token);
      assert.equal(token.session_id, joined.body.sessionId);
      assert.equal(token.application_id, joined.body.applicationId);
      assert.equal(JSON.parse(token.connection_data).name, 'Ada', 'the display name rides in the token data');
      // …after asking the config service for our application, with the same token.
      const config = first.outgoing.find((r) => r.url.hostname === 'config.opentok.com');
      assert.ok(config, 'the SDK asked the config service first');
      assert.equal(config.url.pathname, `/project/${joined.body.applicationId}/config.json`);
      assert.equal(config.headers['x-tb-token-auth'], joined.body.token);

      // Our answer in Vonage's place reaches the person as the SDK's error.
      await first.page.waitForFunction((text) => document.getElementById('error').textContent.includes(text),
        REFUSAL, { timeout: 30_000 });
      assert.equal(await first.page.textContent('#connection'), 'not connected');

      // The SDK came from the page's own origin; nothing was fetched from a CDN.
      assert.ok(first.loaded.some((u) => u.pathname === '/vendor/opentok.min.js'));
      const hosts = new Set(first.outgoing.map((r) => r.url.hostname));
      for (const host of hosts) assert.ok(VONAGE_HOSTS.has(host), `the page reached out to ${host}`);

      // Someone else, in another browser context, joins the same room: same session, own token.
      const other = await joinFromPage(second.page, room, 'Grace');
      assert.equal(other.status, 200, JSON.stringify(other.body));
      assert.equal(other.body.created, false);
      assert.equal(other.body.sessionId, joined.body.sessionId);
      assert.notEqual(other.body.token, joined.body.token);
      assert.equal(await second.page.textContent('#session-id'), joined.body.sessionId);
      const otherAnvil = await anvilRequest(second);
      assert.equal(otherAnvil.url.pathname, `/session/${joined.body.sessionId}`);
      assert.equal(otherAnvil.headers['x-opentok-auth'], other.body.token);
      assert.equal(JSON.parse(claims(other.body.token).connection_data).name, 'Grace');
    } finally {
      await first.context.close();
      await second.context.close();
    }
  });

test('a refused join shows the problem detail, and the SDK is never asked to connect', { timeout: 60_000 }, async () => {
  const room = 'no spaces allowed!';
  const direct = await fetch(`${dev.serviceUrl}/rooms/${encodeURIComponent(room)}/join`, { method: 'POST' });
  assert.equal(direct.status, 400);
  const problem = await direct.json();
  assert.equal(problem.code, 'invalid_request');

  const opened = await openPage();
  try {
    const refused = await joinFromPage(opened.page, room, 'Ada');
    assert.equal(refused.status, 400);
    assert.equal(refused.body.code, 'invalid_request');
    await opened.page.waitForSelector('#error:not([hidden])');
    assert.equal(await opened.page.textContent('#error'), problem.detail);
    assert.equal(await opened.page.isHidden('#joined'), true);
    assert.deepEqual(opened.outgoing.map((r) => r.url.href), [], 'nothing was sent towards Vonage');
  } finally {
    await opened.context.close();
  }
});

test('dev refuses an --example-page directory without a built page, saying how to build it', { timeout: 30_000 }, async () => {
  const child = spawn(BIN, ['dev', '--listen', '127.0.0.1:0', '--example-page', path.join(REPO_ROOT, 'examples/web/src-missing'),
    '--example-listen', '127.0.0.1:0'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.notEqual(code, 0);
  assert.match(stderr, /no index\.html there; build the page first: npm ci --prefix clients\/js/);
});
