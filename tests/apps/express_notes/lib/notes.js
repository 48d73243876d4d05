'use strict';
/**
 * A session's data and what the routes do to it: tests/apps/notes/data.py, in JavaScript.
 *
 *     {"_auth_user_id": "u-1001", "_auth_user_name": "Ann Lee",  // only when logged in
 *      "_csrf": "<token>", "created_at": 1733190000.25,          // every session
 *      "history": [{"page": "home", "at": 1733190001.5}],        // the last 5 visits
 *      "flash": {"ü": ["nested", 1, 2.5, null, true]},           // every session
 *      "prefs": {...}, "tags": [...], "visits": {...}, "draft": "..."}  // once written
 *
 * The data lives on req.session (express-session), beside its `cookie` and the
 * kit's record; `data` below is what sessionData() gives. Readers take what fits
 * and ignore the rest: an import stores whatever object it is given.
 */

const crypto = require('node:crypto');

const USER_ID = '_auth_user_id';
const USER_NAME = '_auth_user_name';
const HISTORY_KEPT = 5;
const MAX_PREFS = 32;
const MAX_TAGS = 50;
const MAX_PAGES = 100;

class NotesError extends Error {
  constructor(status, code, extra = {}) {
    super(code);
    this.status = status;
    this.body = { error: code, ...extra };
  }
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const csrf = () => crypto.randomBytes(24).toString('base64url');

function fresh(now) {
  return { _csrf: csrf(), created_at: now, history: [], flash: { 'ü': ['nested', 1, 2.5, null, true] } };
}

/** The data of the session a login makes: a guest's (or the same user's) is kept, another
 *  user's flushed (Django's login()); the CSRF token is new either way. */
function loggedIn(old, user, now) {
  const carry = old !== null && (old[USER_ID] === undefined || old[USER_ID] === null ||
    old[USER_ID] === user.id);
  const base = carry ? structuredClone(old) : fresh(now);
  delete base[USER_ID];
  delete base[USER_NAME];
  delete base._csrf;
  return { [USER_ID]: user.id, [USER_NAME]: user.name, _csrf: csrf(), ...base };
}

function userOf(data) {
  const id = data[USER_ID];
  const name = data[USER_NAME];
  return typeof id === 'string' && id && typeof name === 'string' ? { id, name } : null;
}

function prefsOf(data) {
  const out = {};
  if (isObject(data.prefs)) {
    for (const [k, v] of Object.entries(data.prefs)) if (typeof v === 'string') out[k] = v;
  }
  return out;
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

function tagsOf(data) {
  if (!Array.isArray(data.tags)) return [];
  return [...new Set(data.tags.filter((t) => typeof t === 'string'))].sort(byCodePoint);
}

function visitsOf(data) {
  const out = {};
  if (isObject(data.visits)) {
    for (const [k, v] of Object.entries(data.visits)) if (Number.isInteger(v) && v > 0) out[k] = v;
  }
  return out;
}

const draftOf = (data) => (typeof data.draft === 'string' ? data.draft : null);

function stateView(data) {
  const d = data || {};
  return { user: userOf(d), prefs: prefsOf(d), tags: tagsOf(d), visits: visitsOf(d), draft: draftOf(d) };
}

// --- writers: change `data` in place ----------------------------------------
function setPref(data, key, value) {
  const prefs = prefsOf(data);
  if (!(key in prefs) && Object.keys(prefs).length >= MAX_PREFS) {
    throw new NotesError(400, 'too_many_prefs', { limit: MAX_PREFS });
  }
  prefs[key] = value;
  data.prefs = prefs;
}

function deletePref(data, key) {
  const prefs = prefsOf(data);
  delete prefs[key];
  data.prefs = prefs;
}

function addTag(data, tag) {
  const tags = tagsOf(data);
  if (!tags.includes(tag) && tags.length >= MAX_TAGS) throw new NotesError(400, 'too_many_tags', { limit: MAX_TAGS });
  data.tags = [...new Set([...tags, tag])].sort(byCodePoint);
}

function removeTag(data, tag) {
  data.tags = tagsOf(data).filter((t) => t !== tag);
}

function visit(data, page, now) {
  const visits = visitsOf(data);
  if (!(page in visits) && Object.keys(visits).length >= MAX_PAGES) {
    throw new NotesError(400, 'too_many_pages', { limit: MAX_PAGES });
  }
  visits[page] = (visits[page] || 0) + 1;
  data.visits = visits;
  const kept = Array.isArray(data.history) ? data.history : [];
  data.history = [...kept, { page, at: now }].slice(-HISTORY_KEPT);
}

function setDraft(data, text) {
  data.draft = text;
}

module.exports = { NotesError, fresh, loggedIn, userOf, stateView, setPref, deletePref, addTag,
  removeTag, visit, setDraft };
