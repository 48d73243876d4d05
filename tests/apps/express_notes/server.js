#!/usr/bin/env node
'use strict';
/**
 * The notes monolith in Express (README.md): one node, sessions in its memory.
 *
 *     node server.js --port P --node ID --internal-token-file F [--host H] [--secret-file F]
 *
 * Prints "express-notes ready on http://HOST:PORT node=ID" once it listens; one
 * line on stderr and exit 1 when it cannot start; SIGTERM/SIGINT stop it (exit 0).
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const { parseArgs } = require('node:util');

const express = require('express');
const session = require('express-session');
const strangler = require('strangler-express');

const { errors, routes } = require('./lib/routes');

const COOKIE = 'sessionid';
const HEADERS = { sessionId: 'X-Notes-Session', revision: 'X-Notes-Rev', node: 'X-Notes-Node' };

function options() {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      node: { type: 'string' },
      'internal-token-file': { type: 'string' },
      'secret-file': { type: 'string' },
    },
    strict: true,
  });
  for (const need of ['port', 'node', 'internal-token-file']) {
    if (!values[need]) throw new Error(`--${need} is required`);
  }
  // every node of one app must sign cookies alike: the gateway moves sessions between them
  const secret = values['secret-file']
    ? fs.readFileSync(values['secret-file'], 'utf8').trim()
    : crypto.createHash('sha256').update(fs.readFileSync(values['internal-token-file'])).digest('hex');
  return { ...values, secret };
}

function buildApp(opts) {
  const store = new session.MemoryStore();
  const kit = strangler({
    nodeId: opts.node, internalTokenFile: opts['internal-token-file'], secret: opts.secret,
    cookieName: COOKIE, headers: HEADERS, store, cookie: { path: '/', httpOnly: true, sameSite: 'lax' },
  });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(kit.router);
  app.use(session({
    name: COOKIE, secret: opts.secret, store, resave: false, saveUninitialized: false,
    cookie: { path: '/', httpOnly: true, sameSite: 'lax' },
  }));
  app.use(kit);
  app.use(routes(opts.node, kit.bootId));
  app.use((req, res) => res.status(404).json({ error: 'not_found' }));
  app.use(errors);
  return app;
}

function main() {
  let opts;
  try {
    opts = options();
  } catch (err) {
    process.stderr.write(`express-notes: ${err.message}\n`);
    process.exit(1);
  }
  const server = buildApp(opts).listen(Number(opts.port), opts.host);
  server.on('listening', () => {
    const { port } = server.address();
    process.stdout.write(`express-notes ready on http://${opts.host}:${port} node=${opts.node}\n`);
  });
  server.on('error', (err) => {
    process.stderr.write(`express-notes: ${err.message}\n`);
    process.exit(1);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
