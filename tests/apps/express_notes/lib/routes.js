'use strict';
/**
 * The notes monolith's public routes (tests/apps/notes/README.md) on express-session.
 *
 * Every write reads and checks its input first (a refused request never makes a
 * session), then changes req.session: a guest's first write fills in a fresh
 * session, which express-session (saveUninitialized: false) then saves and sets
 * the cookie for. A login regenerates the session (a new id); a logout destroys it.
 */

const express = require('express');
const { sessionData } = require('strangler-express');

const notes = require('./notes');

const { NotesError } = notes;
const MAX_BODY = '256kb';
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const USERS = [
  { id: 'u-1001', username: 'ann', name: 'Ann Lee', password: 'ann-pass' },
  { id: 'u-1002', username: 'bo', name: 'Bo Chen', password: 'bo-pass' },
  { id: 'u-1003', username: 'cy', name: 'Cy Díaz', password: 'cy-pass' },
  { id: 'u-1004', username: 'dee', name: "Dee O'Neil", password: 'dee-pass' },
];

const now = () => Date.now() / 1000;
const hasData = (req) => req.session && Object.keys(sessionData(req.session)).length > 0;
const codePoints = (s) => [...s].length;

function body(req) {
  if (!Buffer.isBuffer(req.body)) throw new NotesError(400, 'malformed_json');
  let value;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(req.body));
  } catch {
    throw new NotesError(400, 'malformed_json');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new NotesError(400, 'body_not_object');
  }
  return value;
}

function text(obj, field, maxLen, empty = false) {
  const value = obj[field];
  if (typeof value !== 'string' || codePoints(value) > maxLen || (!value && !empty)) {
    throw new NotesError(400, 'invalid_field', { field });
  }
  return value;
}

function name(value, what) {
  if (!NAME.test(value)) throw new NotesError(400, `invalid_${what}`);
  return value;
}

function tag(value) {
  const bad = [...value].some((c) => c.codePointAt(0) < 0x20 || (c.codePointAt(0) >= 0x7f && c.codePointAt(0) < 0xa0));
  if (codePoints(value) < 1 || codePoints(value) > 40 || bad || value !== value.trim()) {
    throw new NotesError(400, 'invalid_tag');
  }
  return value;
}

/** Apply `change` to the request's session (filled in fresh for a guest); answer the state. */
function write(req, res, change) {
  if (!hasData(req)) Object.assign(req.session, notes.fresh(now()));
  change(req.session);
  res.json(notes.stateView(sessionData(req.session)));
}

const handle = (fn) => (req, res, next) => Promise.resolve().then(() => fn(req, res)).catch(next);

function routes(nodeId, bootId) {
  const r = express.Router();
  const raw = express.raw({ type: () => true, limit: MAX_BODY });
  r.get('/healthz', (req, res) => res.json({ ok: true, node: nodeId, boot_id: bootId }));
  r.get('/about', (req, res) => res.type('html').send('<!doctype html><title>About notes</title><h1>notes</h1>'));
  r.post('/login', raw, handle(async (req, res) => {
    const b = body(req);
    const username = text(b, 'username', 200);
    const password = text(b, 'password', 200);
    const user = USERS.find((u) => u.username === username && u.password === password);
    if (!user) throw new NotesError(401, 'invalid_credentials');
    const old = hasData(req) ? sessionData(req.session) : null;
    await new Promise((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
    Object.assign(req.session, notes.loggedIn(old, user, now()));
    res.json({ id: user.id, name: user.name });
  }));
  r.post('/logout', handle(async (req, res) => {
    await new Promise((resolve, reject) => req.session.destroy((err) => (err ? reject(err) : resolve())));
    res.clearCookie('sessionid', { path: '/' });
    res.json({ logged_out: true });
  }));
  r.get('/api/me', (req, res) => {
    const user = hasData(req) ? notes.userOf(sessionData(req.session)) : null;
    if (!user) throw new NotesError(401, 'not_logged_in');
    res.json(user);
  });
  r.get('/api/state', (req, res) => res.json(notes.stateView(hasData(req) ? sessionData(req.session) : null)));
  r.put('/api/prefs/:key', raw, (req, res) => {
    const key = name(req.params.key, 'key');
    const value = text(body(req), 'value', 200, true);
    write(req, res, (d) => notes.setPref(d, key, value));
  });
  r.delete('/api/prefs/:key', (req, res) => {
    const key = name(req.params.key, 'key');
    write(req, res, (d) => notes.deletePref(d, key));
  });
  r.post('/api/tags', raw, (req, res) => {
    const t = tag(text(body(req), 'tag', 40));
    write(req, res, (d) => notes.addTag(d, t));
  });
  r.delete('/api/tags/:tag', (req, res) => {
    const t = tag(req.params.tag);
    write(req, res, (d) => notes.removeTag(d, t));
  });
  r.post('/api/visits/:page', (req, res) => {
    const page = name(req.params.page, 'page');
    write(req, res, (d) => notes.visit(d, page, now()));
  });
  r.put('/api/draft', raw, (req, res) => {
    const t = text(body(req), 'text', 10000, true);
    write(req, res, (d) => notes.setDraft(d, t));
  });
  return r;
}

/** Errors as the notes app answers them: {"error": code, ...}, never an HTML page. */
function errors(err, req, res, next) { // eslint-disable-line no-unused-vars
  if (err instanceof NotesError) return res.status(err.status).json(err.body);
  if (err.type === 'entity.too.large') return res.status(413).json({ error: 'body_too_large', limit: 262144 });
  if (err.status >= 400 && err.status < 500) return res.status(err.status).json({ error: 'bad_request' });
  process.stderr.write(`${new Date().toISOString()} error ${err.stack || err}\n`);
  return res.status(500).json({ error: 'internal' });
}

module.exports = { routes, errors };
