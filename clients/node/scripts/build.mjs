// Builds dist/esm (ES modules) and dist/cjs (CommonJS), each with .d.ts files.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--module', 'CommonJS', '--moduleResolution', 'Node10',
  '--outDir', join(root, 'dist', 'cjs')], { stdio: 'inherit' });
// dist/cjs is CommonJS although the package is "type": "module".
mkdirSync(join(root, 'dist', 'cjs'), { recursive: true });
writeFileSync(join(root, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
// .d.ts files of the CommonJS build say "import ... from './x.js'", which resolves to the .d.ts beside it: fine.
for (const f of readdirSync(join(root, 'dist', 'cjs')))
  if (f.endsWith('.js') && readFileSync(join(root, 'dist', 'cjs', f), 'utf8').length === 0)
    throw new Error(`empty output ${f}`);
