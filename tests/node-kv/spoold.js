// Starts a spoold on port 0 in a temporary directory for one test file,
// and stops it (by its pid) when the file is done.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

async function startSpoold(extra = []) {
  const bin = process.env.SPOOLD || path.resolve(__dirname, '../../build-test/broker/spoold');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-node-kv-'));
  const portFile = path.join(dir, 'port');
  fs.mkdirSync(path.join(dir, 'data'));
  const args = ['--port', '0', '--port-file', portFile, '--data-dir', path.join(dir, 'data'),
    '--http-port', '0', '--shards', '2', ...extra];
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (fs.existsSync(portFile)) {
      const text = fs.readFileSync(portFile, 'utf8');
      if (text.endsWith('\n')) {
        return {
          port: Number(text.trim()),
          async stop() {
            proc.kill('SIGTERM');
            await new Promise((resolve) => (proc.exitCode !== null ? resolve() : proc.once('exit', resolve)));
            fs.rmSync(dir, { recursive: true, force: true });
          },
        };
      }
    }
    if (proc.exitCode !== null) throw new Error('spoold exited: ' + log);
    await new Promise((r) => setTimeout(r, 20));
  }
  proc.kill('SIGKILL');
  throw new Error('spoold did not listen within 10 s: ' + log);
}

// CRC16/XMODEM slot of a key, honouring {hash tags}, as Redis Cluster does.
function slotOf(key) {
  let k = Buffer.from(key);
  const open = k.indexOf('{');
  if (open >= 0) {
    const close = k.indexOf('}', open + 1);
    if (close > open + 1) k = k.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of k) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

// Two keys with this prefix that live on different shards of n.
function keysOnTwoShards(prefix, n = 2) {
  const first = prefix + '0';
  for (let i = 1; i < 1000; i++) {
    const k = prefix + i;
    if (slotOf(k) % n !== slotOf(first) % n) return [first, k];
  }
  throw new Error('no pair found');
}

module.exports = { startSpoold, slotOf, keysOnTwoShards };
