// What both browser tests need: where the binary and Chromium are, a way to start the binary and
// wait for the line that says it is ready, and the flags Chromium runs headless with here.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.VONAGE_SESSIONS_BIN || path.join(REPO_ROOT, 'target/debug/vonage-sessions');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Headless Chromium in this sandbox: no GPU, no sandbox, nothing fetched in the background. */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Throws, saying how to install it, unless Chromium is at `CHROMIUM`. */
export function requireChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's package (apt-get install chromium) `
      + 'or point CHROMIUM_PATH at a Chromium binary; scripts/test installs it when run as root');
  }
}

/**
 * Starts the binary with `args` and `env` (on top of this process's environment without its
 * OPENTOK_/VONAGE_ variables). Each stdout line goes to `ready(line)`; the first value it returns
 * resolves the promise, with a `stop()` added (SIGTERM, resolved on exit). Rejects if the binary
 * exits first, or after `timeoutMs`, with the tail of its stderr.
 */
export function startBinary(args, env, ready, timeoutMs) {
  if (!existsSync(BIN)) {
    throw new Error(`vonage-sessions binary not found at ${BIN}: run \`cargo build\` first`);
  }
  const clean = Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !/^(OPENTOK_|VONAGE_|VIDEO_API_URL$)/.test(k)));
  const child = spawn(BIN, args, {
    cwd: REPO_ROOT, env: { ...clean, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-8000); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vonage-sessions ${args.join(' ')} did not start; stderr:\n${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vonage-sessions ${args.join(' ')} exited with ${code}; stderr:\n${stderr}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const value = ready(line.trim());
      if (value) {
        clearTimeout(timer);
        resolve({
          ...value,
          stop: () => new Promise((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
        });
      }
    });
  });
}
