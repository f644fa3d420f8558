// Builds the page into dist/: src/app.js bundled with @vonage-sessions/client (esbuild), the
// HTML and CSS copied, and the official Vonage browser SDK copied from node_modules into
// dist/vendor/ (served from the page's own origin, never from a CDN).
// Needs `npm ci --prefix clients/js && npm run build --prefix clients/js` first (the client's dist/).
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.join(HERE, 'dist');
const require = createRequire(import.meta.url);

const client = path.join(HERE, '..', '..', 'clients', 'js', 'dist', 'index.js');
if (!existsSync(client)) {
  console.error('clients/js is not built: run npm ci --prefix clients/js && npm run build --prefix clients/js');
  process.exit(1);
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(path.join(OUT, 'vendor'), { recursive: true });
await build({
  entryPoints: [path.join(HERE, 'src', 'app.js')],
  outfile: path.join(OUT, 'app.js'),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css']) copyFileSync(path.join(HERE, 'src', file), path.join(OUT, file));
const sdk = path.join(path.dirname(require.resolve('@vonage/client-sdk-video/package.json')), 'dist', 'js');
copyFileSync(path.join(sdk, 'opentok.min.js'), path.join(OUT, 'vendor', 'opentok.min.js'));
console.log(`built ${path.relative(process.cwd(), OUT) || 'dist'}: serve it with vonage-sessions dev --example-page examples/web/dist`);
