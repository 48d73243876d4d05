'use strict';
/**
 * The session-export hook, /_internal/sessions/{sid}, as docs/protocol.md section 4 has it.
 *
 * - GET: 200 {"session_id", "revision", "node", "data", "imported"?}, 404 when unknown.
 *   X-Strangler-Fence: F (a non-negative integer, else 400) is noted first as the
 *   highest fence seen for the id when higher -- also when there is no such session.
 * - PUT {"data": {...}, "expected_revision": int | null, "fence": int?}: 200
 *   {"revision": new}; 409 {"revision": current, "fenced": true} for a fence lower
 *   than one seen, 409 {..., "fenced": false} when the revision is not the expected
 *   one (0 when unknown). The data replaces the session's; its id and cookie stay.
 * - DELETE: 204, whether or not the session existed. Fences are kept.
 *
 * Every call needs X-Internal-Token (compared in constant time): 403 without the
 * right one, 503 when the node has none. {sid} is the cookie value (see ids.js),
 * percent-encoded as one path segment. Fences live in this process's memory, and
 * the calls for one session run one at a time (locks.js), so of eight imports
 * expecting the same revision exactly one lands.
 */

const crypto = require('node:crypto');

const { isLosslessNumber } = require('lossless-json');

const { TooLarge, drain, readBody } = require('./body');
const { JsonError, isCount, parseExact, toPlain } = require('./json');
const { KeyedQueue } = require('./locks');
const record = require('./record');

const PREFIX = '/_internal/sessions/';
const MAX_COUNT = 2n ** 63n - 1n;

class Hook {
  /** opts: {nodeId, token (null: off), ids, store, maxImportBytes, newCookie()}. */
  constructor(opts) {
    this.opts = opts;
    this.fences = new Map();
    /** store id -> the revision this process's last import made (see middleware.js). */
    this.imports = new Map();
    this.queue = new KeyedQueue();
    this.tokenDigest = opts.token ? sha256(opts.token) : null;
  }

  /** Express middleware: answers /_internal/sessions/{sid}, passes everything else on. */
  handle(req, res, next) {
    const path = (req.originalUrl || req.url).split('?')[0];
    if (!path.startsWith(PREFIX)) return next();
    this.answer(req, res, path.slice(PREFIX.length)).catch((err) => {
      if (!res.headersSent) send(res, 500, { error: 'hook_failed', detail: String(err) });
      else res.destroy(err);
    });
    return undefined;
  }

  async answer(req, res, segment) {
    if (!this.tokenDigest) return refuse(req, res, 503, 'internal_disabled');
    const given = req.headers['x-internal-token'];
    if (typeof given !== 'string' || !crypto.timingSafeEqual(sha256(given), this.tokenDigest)) {
      return refuse(req, res, 403, 'forbidden');
    }
    const sid = decodeSegment(segment);
    if (sid === null) return refuse(req, res, 400, 'bad_session_id');
    const id = this.opts.ids.storeId(sid);
    switch (req.method) {
      case 'GET': return this.export(req, res, sid, id);
      case 'PUT': return this.import(req, res, id);
      case 'DELETE': return this.delete(req, res, id);
      default:
        res.setHeader('Allow', 'GET, PUT, DELETE');
        return refuse(req, res, 405, 'method_not_allowed');
    }
  }

  async export(req, res, sid, id) {
    const raw = req.headers['x-strangler-fence'];
    let fence = null;
    if (raw !== undefined) {
      if (typeof raw !== 'string' || !/^[0-9]{1,19}$/.test(raw) || BigInt(raw) > MAX_COUNT) {
        return send(res, 400, { error: 'bad_fence', detail: 'X-Strangler-Fence must be a non-negative integer' });
      }
      fence = BigInt(raw);
    }
    if (id === null) return send(res, 404, { error: 'not_found' });
    return this.queue.run(id, async () => {
      if (fence !== null) this.noteFence(id, fence); // a lower one is only not noted
      const sess = await this.get(id);
      if (!sess) return send(res, 404, { error: 'not_found' });
      const m = record.meta(sess);
      let text = `{"session_id":${JSON.stringify(sid)},"revision":${record.revision(sess)},` +
        `"node":${JSON.stringify(this.opts.nodeId)},"data":${record.exportText(sess)}`;
      if (m && m.imported) {
        text += `,"imported":{"fence":${m.imported.fence},"revision":${m.imported.revision}}`;
      }
      return sendText(res, 200, `${text}}`);
    });
  }

  async import(req, res, id) {
    let raw;
    try {
      raw = await readBody(req, this.opts.maxImportBytes);
    } catch (err) {
      if (err instanceof TooLarge) {
        return refuse(req, res, 413, 'body_too_large', { limit: this.opts.maxImportBytes });
      }
      throw err;
    }
    if (id === null) return send(res, 400, { error: 'bad_session_id' });
    let body;
    try {
      body = parseImport(raw);
    } catch (err) {
      if (err instanceof JsonError) return send(res, 400, { error: 'bad_import', detail: err.message });
      throw err;
    }
    return this.queue.run(id, async () => {
      const old = await this.get(id);
      const current = record.revision(old);
      if (body.fence !== null && !this.noteFence(id, body.fence)) {
        return send(res, 409, { revision: current, fenced: true });
      }
      if (body.expected !== null && body.expected !== BigInt(current)) {
        return send(res, 409, { revision: current, fenced: false });
      }
      const cookieData = old && old.cookie ? old.cookie : this.opts.newCookie();
      await this.set(id, record.imported(body.data, cookieData, current + 1, body.fence));
      this.imports.set(id, current + 1);
      return send(res, 200, { revision: current + 1 });
    });
  }

  async delete(req, res, id) {
    if (id !== null) {
      await this.queue.run(id, () => this.destroy(id));
      this.imports.delete(id);
    }
    res.statusCode = 204;
    res.end();
  }

  /** Remember `fence` if it is the highest seen for `id`; false when a higher one was. */
  noteFence(id, fence) {
    const seen = this.fences.get(id);
    if (seen !== undefined && fence < seen) return false;
    this.fences.set(id, fence);
    return true;
  }

  get(id) {
    return new Promise((resolve, reject) => {
      this.opts.store.get(id, (err, sess) => {
        if (err && err.code !== 'ENOENT') reject(err);
        else resolve(sess || null);
      });
    });
  }

  set(id, sess) {
    return new Promise((resolve, reject) => {
      this.opts.store.set(id, sess, (err) => (err ? reject(err) : resolve()));
    });
  }

  destroy(id) {
    return new Promise((resolve, reject) => {
      this.opts.store.destroy(id, (err) => (err && err.code !== 'ENOENT' ? reject(err) : resolve()));
    });
  }
}

/** {"data": {...}, "expected_revision": int|null, "fence": int?} -> {data, expected, fence}
 *  (BigInts or null); JsonError for anything else. */
function parseImport(raw) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new JsonError('body is not UTF-8');
  }
  const body = parseExact(text);
  if (!isObject(body) || !Object.hasOwn(body, 'data') || !Object.hasOwn(body, 'expected_revision')) {
    throw new JsonError('body must be {"data": {...}, "expected_revision": int|null}');
  }
  if (!isObject(body.data)) throw new JsonError('data must be an object');
  for (const key of record.HIDDEN) {
    if (Object.hasOwn(body.data, key)) throw new JsonError(`data must not hold ${key}: it is the session's own`);
  }
  const expected = body.expected_revision;
  if (expected !== null && !isCount(expected, MAX_COUNT)) {
    throw new JsonError('expected_revision must be an int >= 0 or null');
  }
  const fence = Object.hasOwn(body, 'fence') ? body.fence : null;
  if (fence !== null && !isCount(fence, MAX_COUNT)) {
    throw new JsonError('fence must be an int >= 0 or absent');
  }
  toPlain(body.data); // refuses a number no double can hold
  return {
    data: body.data,
    expected: expected === null ? null : BigInt(expected.value),
    fence: fence === null ? null : BigInt(fence.value),
  };
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) &&
    !isLosslessNumber(value);
}

function decodeSegment(segment) {
  if (!segment || segment.includes('/')) return null;
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

function sha256(text) {
  return crypto.createHash('sha256').update(String(text), 'utf8').digest();
}

function send(res, status, value) {
  return sendText(res, status, JSON.stringify(value));
}

function sendText(res, status, text) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** An answer before the body was read: the rest of it is read and dropped. */
function refuse(req, res, status, error, extra = {}) {
  if (!req.complete) drain(req);
  return send(res, status, { error, ...extra });
}

module.exports = { Hook, PREFIX };
