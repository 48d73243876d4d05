#!/usr/bin/env node
'use strict';
// The notes app's new service (tests/apps/notes_node/README.md): the state routes,
// written from docs/protocol.md §5-6 and tests/apps/notes/README.md alone.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const { parseArgs } = require('node:util');

const json = require('./lib/json');
const notes = require('./lib/notes');
const { Verifier, BadToken, KeysUnavailable } = require('./lib/identity');
const { Records, Unavailable, OutcomeUnknown, handleOf } = require('./lib/records');

const { NotesError } = notes;
const COOKIE = 'sessionid';

function options() {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'instance-id': { type: 'string', default: 'n1' },
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      'key-prefix': { type: 'string', default: 'strangler' },
      'jwks-url': { type: 'string' },
      service: { type: 'string', default: 'notes' },
      issuer: { type: 'string', default: 'strangler-gateway' },
      'session-key-file': { type: 'string' },
      'session-ttl-s': { type: 'string', default: '86400' },
      'write-budget-ms': { type: 'string', default: '3000' },
      'redis-timeout-ms': { type: 'string', default: '400' },
      'jwks-cooldown-ms': { type: 'string', default: '1000' },
      'leeway-s': { type: 'string', default: '5' },
    },
    strict: true,
  });
  if (!values['jwks-url']) throw new Error('--jwks-url is required');
  let sessionKey = null;
  if (values['session-key-file']) {
    sessionKey = Buffer.from(fs.readFileSync(values['session-key-file'], 'utf8').trim(), 'utf8');
    if (sessionKey.length < 32) throw new Error('the session key must be at least 32 bytes');
  }
  return { ...values, sessionKey };
}

const log = (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

// ------------------------------------------------------------------ answers
function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : json.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers });
  res.end(text);
}

const notFound = (res) => {
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end('404: Not Found');
};

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      reject(new NotesError(413, 'body_too_large', { limit }));
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new NotesError(413, 'body_too_large', { limit }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// ------------------------------------------------------------------ routes
/** [method, pattern, handler]: a pattern's `:name` is one decoded path segment. */
const ROUTES = [
  ['GET', '/healthz', healthz],
  ['GET', '/api/me', me],
  ['GET', '/api/state', state],
  ['PUT', '/api/prefs/:key', (ctx) => write(ctx, async () => {
    const key = notes.pathName(ctx.params.key, 'key');
    const body = notes.parseObject(await ctx.body());
    return notes.changes.setPref(key, notes.textField(body, 'value', notes.MAX_PREF_VALUE, true));
  })],
  ['DELETE', '/api/prefs/:key', (ctx) => write(ctx, async () => notes.changes.deletePref(
    notes.pathName(ctx.params.key, 'key')))],
  ['POST', '/api/tags', (ctx) => write(ctx, async () => {
    const body = notes.parseObject(await ctx.body());
    return notes.changes.addTag(notes.tagText(notes.textField(body, 'tag', 40)));
  })],
  ['DELETE', '/api/tags/:tag', (ctx) => write(ctx, async () => notes.changes.removeTag(
    notes.tagText(ctx.params.tag)))],
  ['POST', '/api/visits/:page', (ctx) => write(ctx, async () => notes.changes.visit(
    notes.pathName(ctx.params.page, 'page')))],
  ['PUT', '/api/draft', (ctx) => write(ctx, async () => {
    const body = notes.parseObject(await ctx.body());
    return notes.changes.setDraft(notes.textField(body, 'text', notes.MAX_DRAFT, true));
  })],
];

function match(path) {
  const segments = path.split('/');
  const found = [];
  for (const [method, pattern, handler] of ROUTES) {
    const parts = pattern.split('/');
    if (parts.length !== segments.length) continue;
    const params = {};
    const ok = parts.every((p, i) => {
      if (!p.startsWith(':')) return p === segments[i];
      if (!segments[i]) return false;
      try { params[p.slice(1)] = decodeURIComponent(segments[i]); } catch { params[p.slice(1)] = segments[i]; }
      return true;
    });
    if (ok) found.push({ method, handler, params });
  }
  return found;
}

async function healthz(ctx) {
  send(ctx.res, 200, { status: 'ok', instance: ctx.app.instanceId });
}

async function me(ctx) {
  const doc = await ownDoc(ctx);
  const user = notes.userOf(doc);
  if (!user) throw new NotesError(401, 'not_logged_in');
  send(ctx.res, 200, new Map([['id', user.id], ['name', user.name]]));
}

async function state(ctx) {
  send(ctx.res, 200, notes.stateView(await ownDoc(ctx)));
}

/** The session's document if the token names it and it is this token's; else null. */
async function ownDoc(ctx) {
  const identity = await ctx.identity();
  if (identity === null) return null;
  const { doc } = await ctx.app.records.read(identity.handle);
  return owns(identity, doc) ? doc : null;
}

function owns(identity, doc) {
  if (!doc) return false;
  const user = doc.get('user');
  if (identity.guest) return user === null || user === undefined;
  if (!(user instanceof Map)) return false;
  const id = user.get('id');
  return (id instanceof json.Num ? id.text : id) === identity.sub;
}

/** A write: ``prepare`` checks the input (a refusal changes nothing) and gives the change. */
async function write(ctx, prepare) {
  if (ctx.req.headers['x-strangler-shadow'] !== undefined) {
    throw new NotesError(409, 'shadow_write_refused');
  }
  const change = await prepare();
  const identity = await ctx.identity();
  const { records } = ctx.app;
  if (identity === null) {
    await createSession(ctx, change);
    return;
  }
  const doc = await records.change(identity.handle, (current) => {
    if (!owns(identity, current)) throw new NotesError(401, 'not_logged_in');
    return notes.applied(current, change);
  });
  send(ctx.res, 200, notes.stateView(doc));
}

/** A visitor without a session writes: like the monolith, make one (docs/protocol.md §5,
 *  "Log in", for a guest) and set its cookie. */
async function createSession(ctx, change) {
  const key = ctx.app.sessionKey;
  if (key === null) throw new NotesError(401, 'not_logged_in');
  for (;;) {
    const doc = notes.emptyDoc();
    change(doc.get('fields'));
    notes.checkSize(doc);
    const id = crypto.randomBytes(32).toString('base64url');
    if (await ctx.app.records.create(handleOf(key, id), doc)) {
      send(ctx.res, 200, notes.stateView(doc),
        { 'Set-Cookie': `${COOKIE}=${id}; HttpOnly; Path=/; SameSite=Lax` });
      return;
    }
  }
}

// ------------------------------------------------------------------ server
async function handle(app, req, res) {
  const path = req.url.split('?', 1)[0];
  const found = match(path);
  if (!found.length) return notFound(res);
  const route = found.find((r) => r.method === req.method);
  if (!route) {
    res.writeHead(405, { 'Content-Type': 'text/plain; charset=utf-8',
      Allow: [...new Set(found.map((r) => r.method))].join(', ') });
    res.end('405: Method Not Allowed');
    return undefined;
  }
  let identity;
  const ctx = {
    app, req, res, params: route.params,
    body: () => readBody(req, notes.MAX_BODY_BYTES),
    identity: async () => {
      if (identity === undefined) {
        identity = await app.verifier.identify(req.headers['x-strangler-identity']);
      }
      return identity;
    },
  };
  try {
    await route.handler(ctx);
  } catch (exc) {
    if (exc instanceof NotesError) send(res, exc.status, exc.body());
    else if (exc instanceof BadToken) send(res, 401, { error: 'not_logged_in' });
    else if (exc instanceof Unavailable || exc instanceof KeysUnavailable) {
      log(`refused ${req.method} ${path}: ${exc.message}`);
      send(res, 503, { error: 'unavailable' }, { 'Retry-After': '1' });
    } else if (exc instanceof OutcomeUnknown) {
      log(`outcome unknown ${req.method} ${path}: ${exc.message}`);
      send(res, 500, { error: 'outcome_unknown' });
    } else {
      log(`error ${req.method} ${path}: ${exc.stack || exc}`);
      if (!res.headersSent) send(res, 500, { error: 'internal' });
    }
  }
  return undefined;
}

async function main() {
  const opts = options();
  const records = new Records({
    url: opts['redis-url'], prefix: opts['key-prefix'], ttlS: Number(opts['session-ttl-s']),
    commandTimeoutMs: Number(opts['redis-timeout-ms']),
    budgetMs: Number(opts['write-budget-ms']), log,
  });
  const app = {
    instanceId: opts['instance-id'], records, sessionKey: opts.sessionKey,
    verifier: new Verifier({
      jwksUrl: opts['jwks-url'], issuer: opts.issuer, audience: opts.service,
      leewayS: Number(opts['leeway-s']), cooldownMs: Number(opts['jwks-cooldown-ms']),
    }),
  };
  await records.connect();
  const server = http.createServer((req, res) => { handle(app, req, res); });
  // Longer than any client pool keeps an idle connection: the server never closes one a
  // client is about to reuse.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(opts.port), opts.host, resolve);
  });
  const { port } = server.address();
  process.stdout.write(`notes-node ready on http://${opts.host}:${port} instance=${opts['instance-id']}\n`);
  const stop = () => {
    server.close(() => records.close().finally(() => process.exit(0)));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((exc) => {
  process.stderr.write(`notes-node: ${exc.message}\n`);
  process.exit(1);
});
