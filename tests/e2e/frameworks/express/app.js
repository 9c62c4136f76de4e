// An Express app with `trust proxy` and a `ws` WebSocket server, as Express's "behind
// proxies" guide configures it. Run: node app.js PORT. Answers JSON with what Express concluded.
"use strict";
const http = require("http");
const express = require("express");
const { WebSocketServer } = require("ws");

const app = express();
app.set("trust proxy", "loopback");

app.get("*", (req, res) => {
  res.json({
    framework: "express",
    ip: req.ip,
    ips: req.ips,
    protocol: req.protocol,
    secure: req.secure,
    hostname: req.hostname,
  });
});

const server = http.createServer(app);
const wss = new WebSocketServer({ server, path: "/ws" });
wss.on("connection", (sock, req) => {
  sock.on("message", (data) => {
    sock.send(JSON.stringify({ echo: data.toString(), forwardedFor: req.headers["x-forwarded-for"] }));
  });
});
server.listen(Number(process.argv[2]), "127.0.0.1");
