// npm pack of clients/node installs into an empty project; an example using
// every API type-checks there (tsc --noEmit), and the package loads as an
// ES module and as CommonJS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const pkgDir = new URL('..', import.meta.url).pathname;
const npm = process.env.NPM ?? 'npm';
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('npm pack installs into an empty project, type-checks and loads both ways', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'spool-pack-'));
  try {
    const packed = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', dir], pkgDir));
    const tgz = join(dir, packed[0].filename);
    const files = packed[0].files.map((f) => f.path);
    for (const f of ['dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/cjs/index.js', 'dist/cjs/index.d.ts', 'package.json'])
      assert.ok(files.includes(f), `${f} packed`);
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'only dist is packed');
    const proj = join(dir, 'app');
    execFileSync('mkdir', [proj]);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    const lock = JSON.parse(readFileSync(join(pkgDir, 'package-lock.json'), 'utf8'));
    const typesNode = lock.packages['node_modules/@types/node'].version;
    run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', tgz, `@types/node@${typesNode}`], proj);
    const deps = JSON.parse(readFileSync(join(proj, 'node_modules', 'spool-client', 'package.json'), 'utf8')).dependencies;
    assert.deepEqual(Object.keys(deps), ['ioredis'], 'runtime dependency: ioredis only');
    copyFileSync(new URL('./fixtures/pack-example.ts', import.meta.url), join(proj, 'example.ts'));
    writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] },
      files: ['example.ts'],
    }));
    const tsc = join(pkgDir, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      run(process.execPath, [tsc, '-p', 'tsconfig.json'], proj);
    } catch (e) {
      assert.fail(`tsc --noEmit failed:\n${e.stdout}${e.stderr}`);
    }
    // A type error must be caught: the check can fail.
    writeFileSync(join(proj, 'bad.ts'), "import { Queue } from 'spool-client';\nnew Queue('q').add({}, { attempts: 'three' });\n");
    writeFileSync(join(proj, 'tsconfig.bad.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] },
      files: ['bad.ts'],
    }));
    assert.throws(() => run(process.execPath, [tsc, '-p', 'tsconfig.bad.json'], proj),
      (e) => /bad\.ts.*TS2322.*'string' is not assignable to type 'number'/s.test(e.stdout));
    const esm = run(process.execPath, ['--input-type=module', '-e', "import { Queue, Worker, QueueEvents, StaleReceiptError } from 'spool-client'; console.log([Queue, Worker, QueueEvents, StaleReceiptError].map((x) => typeof x).join())"], proj);
    assert.equal(esm.trim(), 'function,function,function,function');
    const cjs = run(process.execPath, ['-e', "const { Queue, Worker, UnrecoverableError } = require('spool-client'); console.log(typeof Queue, typeof Worker, new UnrecoverableError('x').name)"], proj);
    assert.equal(cjs.trim(), 'function function UnrecoverableError');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
