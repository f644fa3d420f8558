// Starts the real binary (the emulator, `serve`, `dev`) on port 0 for the client's tests.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = process.env.VONAGE_SESSIONS_BIN || path.join(REPO_ROOT, 'target/debug/vonage-sessions');
export const LEGACY = { OPENTOK_API_KEY: '123456', OPENTOK_API_SECRET: '1234567890abcdef1234567890abcdef1234567890' };

/** Starts `vonage-sessions ARGS`; resolves with its URL once it prints `listening on http://…`. */
export function startBinary(args, env = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`vonage-sessions binary not found at ${BIN}: run \`cargo build\` first (or set VONAGE_SESSIONS_BIN)`);
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
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vonage-sessions ${args.join(' ')} exited with ${code}; stderr:\n${stderr}`));
    });
    const lines = [];
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      const m = /listening on (http:\/\/\S+)$/.exec(line.trim());
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          lines,
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
