'use strict';
/**
 * JSON with exact numbers, for session data that travels through the hook.
 *
 * JavaScript's JSON.parse turns every number into a double: 9007199254740993
 * becomes ...992, 1.0 becomes 1 and 1E+300 is written back as 1e+300. The
 * protocol compares numbers as typed values and wants back the text it sent
 * (docs/protocol.md section 4), so an import is parsed with lossless-json,
 * which keeps each number's text. The app still sees plain JS values (its
 * store serialises sessions with JSON.stringify anyway); for every top-level
 * key whose plain form would write differently, the exact text is kept beside
 * the session (see record.js) and exported again for as long as the app has
 * not changed that key.
 */

const lossless = require('lossless-json');

class JsonError extends Error {}

/** Any JSON text -> a value whose numbers are LosslessNumbers; JsonError when it is not JSON. */
function parseExact(text) {
  try {
    return lossless.parse(text);
  } catch (err) {
    // SyntaxError, a duplicate key, or a RangeError from nesting past the stack
    throw new JsonError(err && err.message ? err.message : 'not JSON');
  }
}

/** A value from parseExact written back with every number's own text. */
function writeExact(value) {
  return lossless.stringify(value);
}

/** A value from parseExact as plain JS (numbers as doubles); JsonError for one that is not
 *  finite as a double (1e400), which the app could not write back as JSON. */
function toPlain(value) {
  if (lossless.isLosslessNumber(value)) {
    const n = Number(value.value);
    if (!Number.isFinite(n)) throw new JsonError(`number ${value.value} overflows a double`);
    return n;
  }
  if (Array.isArray(value)) return value.map(toPlain);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value)) define(out, key, toPlain(value[key]));
    return out;
  }
  return value;
}

/** obj[key] = value, also for a key such as "__proto__" (an own property, as JSON.parse makes). */
function define(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Whether a LosslessNumber is a JSON integer in 0..max (a BigInt), as text. */
function isCount(value, max) {
  if (!lossless.isLosslessNumber(value) || !/^(0|[1-9][0-9]{0,18})$/.test(value.value)) return false;
  return BigInt(value.value) <= max;
}

module.exports = { JsonError, parseExact, writeExact, toPlain, define, isCount };
