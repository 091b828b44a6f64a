// Starts a spoold on port 0 in a temporary directory for one test file
// (with two shards), and stops it when the file is done: the Node suites'
// one module, tests/support/spoold.mjs, loaded with import() from CommonJS.
'use strict';
const path = require('node:path');
const { pathToFileURL } = require('node:url');

async function startSpoold(extra = []) {
  const shared = pathToFileURL(path.join(__dirname, '../support/spoold.mjs')).href;
  const { startSpoold: start } = await import(shared);
  const s = await start({ args: ['--shards', '2', ...extra], prefix: 'spool-node-kv-' });
  return { port: s.port, stop: s.close };
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
