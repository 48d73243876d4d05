'use strict';
// The notes state routes' rules, as tests/apps/notes/README.md states them for the
// monolith: the same validation, the same error codes and limits, the same
// answers. The data is the shared document's `fields` (docs/protocol.md §5):
// prefs (map of strings), tags (sorted set), visits (counter), draft (lww string).

const json = require('./json');

const MAX_BODY_BYTES = 256 * 1024;
const MAX_DEPTH = 64;
const MAX_PREF_VALUE = 200;
const MAX_DRAFT = 10000;
const MAX_PREFS = 32;
const MAX_TAGS = 50;
const MAX_PAGES = 100;
const MAX_DATA_BYTES = 192 * 1024;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
// What Python's str.strip() takes off besides control characters (refused anyway).
const EDGE_SPACE = /^[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/;

class NotesError extends Error {
  constructor(status, code, extra = {}) {
    super(`${status} ${code}`);
    this.status = status;
    this.code = code;
    this.extra = extra;
  }
  body() { return { error: this.code, ...this.extra }; }
}

const codePoints = (s) => [...s].length;

/** Any JSON value from a request body; 400 malformed_json / too_deep. */
function parseBody(raw) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    throw new NotesError(400, 'malformed_json');
  }
  let value;
  try {
    value = json.parse(text, 900);
  } catch {
    throw new NotesError(400, 'malformed_json');
  }
  if (json.depth(value) > MAX_DEPTH + 1) throw new NotesError(400, 'too_deep', { limit: MAX_DEPTH });
  return value;
}

function parseObject(raw) {
  const value = parseBody(raw);
  if (!(value instanceof Map)) throw new NotesError(400, 'body_not_object');
  return value;
}

function textField(body, field, maxLen, empty = false) {
  const value = body.get(field);
  if (typeof value !== 'string' || codePoints(value) > maxLen || (!value && !empty)) {
    throw new NotesError(400, 'invalid_field', { field });
  }
  return value;
}

function pathName(value, what) {
  if (!NAME.test(value)) throw new NotesError(400, `invalid_${what}`);
  return value;
}

function tagText(value) {
  const n = codePoints(value);
  const control = [...value].some((c) => {
    const o = c.codePointAt(0);
    return o < 0x20 || (o >= 0x7f && o < 0xa0);
  });
  if (n < 1 || n > 40 || control || EDGE_SPACE.test(value)) throw new NotesError(400, 'invalid_tag');
  return value;
}

/** Code-point order (Python's sorted), not UTF-16 order (JavaScript's sort). */
function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

// --- readers: take what fits, ignore the rest (as the monolith does) --------
const fieldsOf = (doc) => (doc && doc.get('fields') instanceof Map ? doc.get('fields') : new Map());

function prefsOf(fields) {
  const prefs = fields.get('prefs');
  const out = new Map();
  if (prefs instanceof Map) for (const [k, v] of prefs) if (typeof v === 'string') out.set(k, v);
  return out;
}

function tagsOf(fields) {
  const tags = fields.get('tags');
  if (!Array.isArray(tags)) return [];
  return [...new Set(tags.filter((t) => typeof t === 'string'))].sort(byCodePoint);
}

function visitsOf(fields) {
  const visits = fields.get('visits');
  const out = new Map();
  if (visits instanceof Map) {
    for (const [k, v] of visits) {
      if (v instanceof json.Num && v.isInteger && BigInt(v.text) > 0n) out.set(k, v);
    }
  }
  return out;
}

function draftOf(fields) {
  const draft = fields.get('draft');
  return typeof draft === 'string' ? draft : null;
}

/** {id, name} of the document's user, or null (a guest, or a user the monolith would
 *  not show). */
function userOf(doc) {
  const user = doc && doc.get('user');
  if (!(user instanceof Map)) return null;
  const id = user.get('id');
  const name = user.get('name');
  if (!((typeof id === 'string' && id) || (id instanceof json.Num && id.isInteger))) return null;
  if (typeof name !== 'string') return null;
  return { id: id instanceof json.Num ? id.text : id, name };
}

function stateView(doc) {
  const fields = fieldsOf(doc);
  const user = userOf(doc);
  return new Map([
    ['user', user ? new Map([['id', user.id], ['name', user.name]]) : null],
    ['prefs', prefsOf(fields)], ['tags', tagsOf(fields)], ['visits', visitsOf(fields)],
    ['draft', draftOf(fields)],
  ]);
}

// --- changes: fields -> fields (a copy), or a NotesError -------------------
const changes = {
  setPref: (key, value) => (fields) => {
    const prefs = prefsOf(fields);
    if (!prefs.has(key) && prefs.size >= MAX_PREFS) {
      throw new NotesError(400, 'too_many_prefs', { limit: MAX_PREFS });
    }
    prefs.set(key, value);
    fields.set('prefs', prefs);
  },
  deletePref: (key) => (fields) => {
    const prefs = prefsOf(fields);
    prefs.delete(key);
    fields.set('prefs', prefs);
  },
  addTag: (tag) => (fields) => {
    const tags = tagsOf(fields);
    if (!tags.includes(tag) && tags.length >= MAX_TAGS) {
      throw new NotesError(400, 'too_many_tags', { limit: MAX_TAGS });
    }
    fields.set('tags', [...new Set([...tags, tag])].sort(byCodePoint));
  },
  removeTag: (tag) => (fields) => {
    fields.set('tags', tagsOf(fields).filter((t) => t !== tag));
  },
  visit: (page) => (fields) => {
    const visits = visitsOf(fields);
    if (!visits.has(page) && visits.size >= MAX_PAGES) {
      throw new NotesError(400, 'too_many_pages', { limit: MAX_PAGES });
    }
    const before = visits.has(page) ? BigInt(visits.get(page).text) : 0n;
    visits.set(page, new json.Num((before + 1n).toString()));
    fields.set('visits', visits);
  },
  setDraft: (text) => (fields) => {
    fields.set('draft', text);
  },
};

/** The document after ``change``, with `user`, `extra` and every other key as they were;
 *  null when nothing changed. */
function applied(doc, change) {
  const fields = new Map(fieldsOf(doc));
  change(fields);
  const next = new Map(doc);
  next.set('fields', fields);
  if (json.stringify(next, true) === json.stringify(doc, true)) return null;
  checkSize(next);
  return next;
}

/** The monolith refuses a write that would make its session too big to import again:
 *  measured on the session as the monolith would hold it. */
function checkSize(doc) {
  const user = userOf(doc);
  const extra = doc.get('extra') instanceof Map ? doc.get('extra') : new Map();
  const native = new Map([...extra, ...fieldsOf(doc)]);
  if (user) {
    native.set('_auth_user_id', user.id);
    native.set('_auth_user_name', user.name);
  }
  if (json.stringify(native).length > MAX_DATA_BYTES) {
    throw new NotesError(413, 'session_too_large', { limit: MAX_DATA_BYTES });
  }
}

function emptyDoc() {
  return new Map([['schema', new json.Num('2')], ['user', null], ['fields', new Map()],
    ['extra', new Map()]]);
}

module.exports = {
  NotesError, MAX_BODY_BYTES, parseObject, textField, pathName, tagText, byCodePoint,
  stateView, userOf, changes, applied, checkSize, emptyDoc, MAX_PREF_VALUE, MAX_DRAFT,
};
