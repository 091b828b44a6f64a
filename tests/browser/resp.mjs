// resp.mjs - a tiny RESP2 client for the browser suite: sends commands as
// arrays of bulk strings, parses replies (simple, error, integer, bulk,
// array), one reply per command in order. Errors come back as Error values
// (not thrown), so a test can look at them.
import net from 'node:net';

export class Resp {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => resolve(new Resp(sock)));
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.drain();
    });
    sock.on('error', (e) => this.failAll(e));
    sock.on('close', () => this.failAll(new Error('connection closed')));
  }

  failAll(e) {
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  cmd(...args) {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
      const b = Buffer.from(String(a));
      parts.push(`$${b.length}\r\n`, b, '\r\n');
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    });
  }

  drain() {
    while (this.waiting.length) {
      const r = parse(this.buf, 0);
      if (!r) return;
      this.buf = this.buf.subarray(r.end);
      this.waiting.shift().resolve(r.value);
    }
  }

  close() {
    this.sock.end();
  }
}

function line(buf, at) {
  const i = buf.indexOf('\r\n', at);
  return i < 0 ? null : { text: buf.toString('utf8', at, i), next: i + 2 };
}

function parse(buf, at) {
  if (at >= buf.length) return null;
  const l = line(buf, at + 1);
  if (!l) return null;
  switch (String.fromCharCode(buf[at])) {
    case '+': return { value: l.text, end: l.next };
    case '-': return { value: new Error(l.text), end: l.next };
    case ':': return { value: Number(l.text), end: l.next };
    case '$': {
      const n = Number(l.text);
      if (n < 0) return { value: null, end: l.next };
      if (buf.length < l.next + n + 2) return null;
      return { value: buf.toString('utf8', l.next, l.next + n), end: l.next + n + 2 };
    }
    case '*': {
      const n = Number(l.text);
      if (n < 0) return { value: null, end: l.next };
      const out = [];
      let p = l.next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (!r) return null;
        out.push(r.value);
        p = r.end;
      }
      return { value: out, end: p };
    }
    default: throw new Error('unexpected RESP byte ' + buf[at]);
  }
}

// A flat field/value array (RESP2 map) as an object.
export function fields(arr) {
  const o = {};
  for (let i = 0; i + 1 < arr.length; i += 2) o[arr[i]] = arr[i + 1];
  return o;
}
