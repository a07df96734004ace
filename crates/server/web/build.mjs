// Bundles the watch pages into dist/ with esbuild: dist/index.html, dist/assets/app.js,
// dist/assets/app.css and the Inter fonts the studio uses. Run by scripts/install.sh (and by
// the test harness when dist/ is older than the sources); takes well under a second.
//
// `--check` type-checks the sources with tsc first (the test harness does; a few seconds).
//
// esbuild and livekit-client come from the node_modules scripts/install.sh put in the cache
// (STREAMIT_WEB_NODE_MODULES), or from ./node_modules after a plain `npm ci` here.
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.STREAMIT_WEB_NODE_MODULES || path.join(here, 'node_modules');
if (!fs.existsSync(path.join(modules, 'esbuild'))) {
  console.error(`esbuild not found in ${modules}: run scripts/install.sh`);
  process.exit(1);
}
const require = createRequire(path.join(modules, 'noop.js'));
const esbuild = require('esbuild');

if (process.argv.includes('--check')) {
  const { spawnSync } = await import('node:child_process');
  // tsc looks for packages in node_modules beside or above the sources; point it at ours.
  const config = path.join(here, '.tsconfig.check.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      extends: './tsconfig.json',
      compilerOptions: { baseUrl: '.', paths: { '*': [path.join(modules, '*')] } },
      include: ['src'],
    }),
  );
  const r = spawnSync(process.execPath, [path.join(modules, 'typescript/bin/tsc'), '-p', config], { stdio: 'inherit' });
  fs.rmSync(config, { force: true });
  if (r.status !== 0) {
    console.error('[web] type check failed');
    process.exit(1);
  }
}

const dist = path.join(here, 'dist');
// Build into a fresh directory and swap it in, so a server reading dist/ never sees half a build.
const staging = fs.mkdtempSync(path.join(here, '.dist-'));
try {
  const result = await esbuild.build({
    entryPoints: { app: path.join(here, 'src/main.ts') },
    bundle: true,
    format: 'esm',
    target: ['chrome110', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    outdir: path.join(staging, 'assets'),
    nodePaths: [modules],
    loader: { '.otf': 'file' },
    assetNames: 'fonts/[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
    legalComments: 'linked',
  });
  const assets = path.join(staging, 'assets');
  const version = createHash('sha256')
    .update(fs.readFileSync(path.join(assets, 'app.js')))
    .update(fs.readFileSync(path.join(assets, 'app.css')))
    .digest('hex')
    .slice(0, 12);
  const html = fs
    .readFileSync(path.join(here, 'src/index.html'), 'utf8')
    .replaceAll('%VERSION%', version);
  fs.writeFileSync(path.join(staging, 'index.html'), html);
  fs.copyFileSync(path.join(here, 'src/favicon.svg'), path.join(assets, 'favicon.svg'));
  const old = `${dist}.old-${process.pid}`;
  if (fs.existsSync(dist)) fs.renameSync(dist, old);
  fs.chmodSync(staging, 0o755);
  fs.renameSync(staging, dist);
  fs.rmSync(old, { recursive: true, force: true });
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(`[web] built ${path.relative(process.cwd(), dist) || dist} (${Math.round(bytes / 1024)} KiB, v${version})`);
} catch (e) {
  fs.rmSync(staging, { recursive: true, force: true });
  console.error(e.message || e);
  process.exit(1);
}
