// Node `ws` server for the client tests (test_client.py): echoes every message in its kind, and
// closes with CODE and REASON when told "close CODE REASON". Prints "listening PORT" once ready.
//
//   node echo_server.js      (port chosen by the system, 127.0.0.1 only; exits after 60 s)
//
// Run with NODE_PATH=/usr/share/nodejs (Debian's node-ws).
'use strict';
const WebSocket = require('ws');

const server = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: true }, () => {
  console.log(`listening ${server.address().port}`);
});
server.on('connection', (ws, request) => {
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? '' : data.toString();
    const words = text.split(' ');
    if (words[0] === 'close') {
      ws.close(Number(words[1]), words.slice(2).join(' '));
    } else if (text === 'headers') {
      ws.send(JSON.stringify({ token: request.headers['x-token'] || null,
                               extensions: request.headers['sec-websocket-extensions'] || null }));
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
});
setTimeout(() => process.exit(0), 60000).unref();
