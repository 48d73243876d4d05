'use strict';
/**
 * What the kit keeps inside each session, under one reserved key.
 *
 * express-session has no revision, so the kit keeps one in the session itself,
 * where every store saves it along with the data:
 *
 *     session.__strangler = {rev: 3,                     // 1 at creation, +1 per change
 *                            exact: {"big": "18446744073709551617"},   // see json.js
 *                            imported: {fence: "12", revision: 3}}     // the last fenced import
 *
 * The export hides this key and express-session's own `cookie`; an import
 * never takes either from its body (it is refused with 400). Everything else
 * in the session is the app's data, exported as it is.
 */

const crypto = require('node:crypto');

const { define, parseExact, toPlain, writeExact } = require('./json');

const RESERVED = '__strangler';
const COOKIE = 'cookie';
const HIDDEN = new Set([RESERVED, COOKIE]);

/** The kit's record in a session, or null for a session made before the kit was there. */
function meta(sess) {
  const m = sess && sess[RESERVED];
  return m && typeof m === 'object' && Number.isSafeInteger(m.rev) ? m : null;
}

/** A session's revision: its record's, 1 for a session the kit never saw change, 0 for none. */
function revision(sess) {
  if (!sess) return 0;
  const m = meta(sess);
  return m ? m.rev : 1;
}

/** The app's keys of a session, in order. */
function dataKeys(sess) {
  return Object.keys(sess).filter((k) => !HIDDEN.has(k));
}

/** A digest of the app's data (not the cookie, not the kit's record): "did it change?". */
function digest(sess) {
  const text = JSON.stringify(sess, function hide(key, value) {
    return this === sess && HIDDEN.has(key) ? undefined : value;
  });
  return crypto.createHash('sha256').update(text, 'utf8').digest('base64');
}

/** The app's data as JSON text, each key the app left alone in its exact imported text. */
function exportText(sess) {
  const exact = (meta(sess) || {}).exact || {};
  const parts = dataKeys(sess).map((key) => {
    const plain = JSON.stringify(sess[key]);
    const text = Object.hasOwn(exact, key) && plainText(exact[key]) === plain ? exact[key] : plain;
    return `${JSON.stringify(key)}:${text === undefined ? 'null' : text}`;
  });
  return `{${parts.join(',')}}`;
}

/** After the app changed the data: drop exact texts of keys it changed or removed. */
function pruneExact(sess) {
  const m = meta(sess);
  if (!m || !m.exact) return;
  for (const key of Object.keys(m.exact)) {
    if (!Object.hasOwn(sess, key) || plainText(m.exact[key]) !== JSON.stringify(sess[key])) {
      delete m.exact[key];
    }
  }
}

function plainText(exactText) {
  return JSON.stringify(toPlain(parseExact(exactText)));
}

/** The session an import stores: `data` (from parseExact) as plain values, the exact text
 *  of each key whose plain form would write differently, the cookie it had (or a new one). */
function imported(data, cookieData, rev, fence) {
  const sess = { [COOKIE]: cookieData };
  const exact = {};
  for (const key of Object.keys(data)) {
    const plain = toPlain(data[key]);
    define(sess, key, plain);
    const text = writeExact(data[key]);
    if (text !== JSON.stringify(plain)) exact[key] = text;
  }
  const m = { rev, exact };
  if (fence !== null) m.imported = { fence: fence.toString(), revision: rev };
  sess[RESERVED] = m;
  return sess;
}

module.exports = { RESERVED, HIDDEN, meta, revision, dataKeys, digest, exportText, pruneExact,
  imported };
