// The server teams run today, built as Vonage's guide does it (learning-opentok-node): Express
// and the official `opentok` SDK. POST /sessions creates a routed session and a publisher token:
// opentok.createSession({ mediaMode: "routed" }) then opentok.generateToken(sessionId), and
// answers { apiKey, sessionId, token }. Two more routes of the same guide, for the other
// scenarios: a token for an existing session, and a named room kept in an in-memory map.
//
// Credentials from the same env vars as vonage-sessions: OPENTOK_API_KEY + OPENTOK_API_SECRET
// (legacy, HS256), or VONAGE_APPLICATION_ID + VONAGE_PRIVATE_KEY_FILE (opentok's Vonage mode,
// RS256). VIDEO_API_URL is the upstream (opentok's `apiUrl` option). Listens on PORT (127.0.0.1).
'use strict';

const fs = require('fs');
const express = require('express');
const OpenTok = require('opentok');

const upstream = process.env.VIDEO_API_URL;
const legacy = process.env.OPENTOK_API_KEY && process.env.OPENTOK_API_SECRET;
const apiKey = legacy ? process.env.OPENTOK_API_KEY : process.env.VONAGE_APPLICATION_ID;
const secret = legacy
  ? process.env.OPENTOK_API_SECRET
  : fs.readFileSync(process.env.VONAGE_PRIVATE_KEY_FILE, 'utf8');
const opentok = new OpenTok(apiKey, secret, { apiUrl: upstream });

const app = express();
app.use(express.json());

app.post('/sessions', (req, res) => {
  opentok.createSession({ mediaMode: 'routed' }, (err, session) => {
    if (err) {
      res.status(500).send({ error: 'createSession error: ' + err.message });
      return;
    }
    const token = opentok.generateToken(session.sessionId);
    res.send({ apiKey, sessionId: session.sessionId, token });
  });
});

app.post('/sessions/:sessionId/tokens', (req, res) => {
  let token;
  try {
    token = opentok.generateToken(req.params.sessionId);
  } catch (err) {
    res.status(404).send({ error: err.message });
    return;
  }
  res.status(201).send({ apiKey, sessionId: req.params.sessionId, token });
});

const rooms = {};
app.post('/rooms/:name/join', (req, res) => {
  const name = req.params.name;
  if (rooms[name]) {
    const token = opentok.generateToken(rooms[name]);
    res.send({ apiKey, sessionId: rooms[name], token });
    return;
  }
  opentok.createSession({ mediaMode: 'routed' }, (err, session) => {
    if (err) {
      res.status(500).send({ error: 'createSession error: ' + err.message });
      return;
    }
    rooms[name] = session.sessionId;
    const token = opentok.generateToken(session.sessionId);
    res.status(201).send({ apiKey, sessionId: session.sessionId, token });
  });
});

const server = app.listen(Number(process.env.PORT || 3000), '127.0.0.1', () => {
  console.log(`node listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
