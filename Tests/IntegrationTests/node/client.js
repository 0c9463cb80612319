// Node `ws` client for Shoal's integration tests. Prints one JSON line, exits 0
// unless something went wrong in the script itself (the Python test asserts).
//
//   node client.js echo URL [BIG_BYTES]     text, binary, big text, big binary round trips
//   node client.js connect URL [LOCAL_ADDR] open (from LOCAL_ADDR) and report status / first message
//   node client.js subprotocol URL A,B      offer subprotocols A and B to the probe handler; report
//                                           ws.protocol and the answer to "protocol"
//
// Run with NODE_PATH=/usr/share/nodejs (Debian's node-ws).
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');

const [mode, url, arg] = process.argv.slice(2);
const out = {};
const done = (code) => { console.log(JSON.stringify(out)); process.exit(code); };
setTimeout(() => { out.error = 'timeout'; done(1); }, 60000).unref();

const opts = { maxPayload: 64 * 1024 * 1024, handshakeTimeout: 10000 };
if (mode === 'connect' && arg) opts.localAddress = arg;
const ws = mode === 'subprotocol' ? new WebSocket(url, arg.split(','), opts) : new WebSocket(url, opts);

const queue = [];
let waiter = null;
ws.on('message', (data, isBinary) => {
  queue.push({ data, isBinary });
  if (waiter) { const w = waiter; waiter = null; w(); }
});
const next = () => new Promise((resolve) => {
  if (queue.length) return resolve(queue.shift());
  waiter = () => resolve(queue.shift());
});

ws.on('unexpected-response', (req, res) => { out.status = res.statusCode; done(0); });
ws.on('error', (e) => { out.error = String(e); done(1); });
ws.on('close', (code, reason) => { out.close = { code, reason: reason.toString() }; done(0); });

ws.on('open', async () => {
  out.open = true;
  out.extensions = ws.extensions;
  if (mode === 'subprotocol') {
    out.protocol = ws.protocol;
    await next();  // the probe's hello
    ws.send('protocol');
    out.answer = JSON.parse((await next()).data.toString());
    ws.close(1000);
    return;
  }
  if (mode === 'connect') {
    const m = await next();
    out.first = { isBinary: m.isBinary, data: m.data.toString() };
    ws.close(1000);
    return;
  }
  const big = Number(arg || 10 * 1024 * 1024);
  ws.send('hello from node');
  let m = await next();
  out.text = { isBinary: m.isBinary, data: m.data.toString() };

  ws.send('héllo ✓ ünïcödé');
  m = await next();
  out.unicode = { isBinary: m.isBinary, data: m.data.toString() };

  const bin = Buffer.from([0, 1, 2, 127, 128, 254, 255]);
  ws.send(bin);
  m = await next();
  out.binary = { isBinary: m.isBinary, equal: Buffer.compare(m.data, bin) === 0 };

  const bigBin = crypto.randomBytes(big);
  ws.send(bigBin);
  m = await next();
  out.bigBinary = { isBinary: m.isBinary, length: m.data.length, equal: Buffer.compare(m.data, bigBin) === 0 };

  const bigText = crypto.randomBytes(big / 2).toString('hex');
  ws.send(bigText);
  m = await next();
  out.bigText = { isBinary: m.isBinary, length: m.data.length, equal: m.data.toString() === bigText };

  ws.close(1000, 'bye');
});
