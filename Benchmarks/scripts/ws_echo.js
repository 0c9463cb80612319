// Node `ws` echo server for side-by-side benchmarks: every message goes back as it came
// (text as text, binary as binary). Usage: NODE_PATH=/usr/share/nodejs node ws_echo.js PORT
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] || 9001);
const server = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
server.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.on("listening", () => console.log(`ws echo on 127.0.0.1:${port}`));
