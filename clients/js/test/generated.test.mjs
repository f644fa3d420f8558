// `generate.mjs --check` (the first step of `npm test`, on the committed openapi.json) fails on a
// document that changed since the package was generated, and passes once it is regenerated.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SPEC = path.join(PACKAGE_DIR, '..', '..', 'openapi.json');
const check = (...args) => spawnSync(process.execPath, ['scripts/generate.mjs', '--check', ...args], {
  cwd: PACKAGE_DIR, encoding: 'utf8',
});

test('a changed openapi.json makes the check fail until the package is regenerated', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'openapi-'));
  try {
    const spec = JSON.parse(readFileSync(SPEC, 'utf8'));
    spec.paths['/rooms/{room}/leave'] = { post: { ...spec.paths['/rooms/{room}/join'].post, operationId: 'leave_room' } };
    const changed = path.join(dir, 'openapi.json');
    writeFileSync(changed, JSON.stringify(spec, null, 2));
    const stale = check('--spec', changed);
    assert.equal(stale.status, 1);
    assert.match(stale.stderr, /stale.*clients\/js\/scripts\/generate/s);

    const out = path.join(dir, 'generated');
    const regen = spawnSync(process.execPath, ['scripts/generate.mjs', '--spec', changed, '--out', out], {
      cwd: PACKAGE_DIR, encoding: 'utf8',
    });
    assert.equal(regen.status, 0, regen.stderr);
    assert.match(readFileSync(path.join(out, 'operations.ts'), 'utf8'), /leaveRoom:/);
    assert.equal(check('--spec', changed, '--out', out).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
