'use strict';
// The shared session record (docs/protocol.md §5): read with HMGET doc v, written
// only through the documented script, compare-and-set on v, exactly once per op id.

const crypto = require('node:crypto');
const { createClient, ErrorReply } = require('redis');
const { WRITE_SCRIPT } = require('./write_script');
const json = require('./json');

const EMPTY_DOC = '{"schema":2,"user":null,"fields":{},"extra":{}}';
const SCRIPT_SHA = crypto.createHash('sha1').update(WRITE_SCRIPT).digest('hex');

/** Nothing was written; Redis could not be reached (answer 503 + Retry-After). */
class Unavailable extends Error {}
/** A write was sent and never answered within the budget (answer 500). */
class OutcomeUnknown extends Error {}

/** handle = base64url(HMAC-SHA256(session key, session id as UTF-8)), no padding. */
function handleOf(key, sessionId) {
  return crypto.createHmac('sha256', key).update(sessionId, 'utf8').digest('base64url');
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function within(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class Records {
  constructor({ url, prefix, ttlS, commandTimeoutMs = 400, budgetMs = 3000, log }) {
    this.prefix = prefix;
    this.ttlS = ttlS;
    this.commandTimeoutMs = commandTimeoutMs;
    this.budgetMs = budgetMs;
    // No offline queue: a command while disconnected fails at once (a 503 before any
    // write, a re-send after one), rather than waiting unseen for a reconnect.
    this.client = createClient({
      url, disableOfflineQueue: true,
      socket: { connectTimeout: 1000, reconnectStrategy: (n) => Math.min(50 * (n + 1), 500) },
    });
    this.client.on('error', (exc) => log(`redis: ${exc.message}`));
  }

  async connect() { await this.client.connect(); }
  async close() {
    try { await this.client.quit(); } catch { await this.client.disconnect().catch(() => {}); }
  }

  key(handle) { return `${this.prefix}:{${handle}}`; }

  /** {doc: Map | null, v} or throws Unavailable. A document that is not a schema-2
   *  object reads as none: this service never guesses at a record it cannot read. */
  async read(handle) {
    let reply;
    try {
      reply = await within(this.client.hmGet(this.key(handle), ['doc', 'v']),
        this.commandTimeoutMs);
    } catch (exc) {
      throw new Unavailable(`read: ${exc.message}`);
    }
    const [raw, v] = reply;
    return { doc: raw === null ? null : parseDoc(raw), v: v === null ? 0 : Number(v) };
  }

  /** Apply ``change(doc) -> newDoc | null`` (null: nothing to write) with compare-and-set;
   *  resolves to the document as this write left it. */
  async change(handle, change) {
    const deadline = Date.now() + this.budgetMs;
    const opId = crypto.randomBytes(12).toString('base64url');
    let rec = await this.read(handle);
    for (;;) {
      const doc = change(rec.doc);
      if (doc === null) return rec.doc;
      const text = json.stringify(doc, true);
      const [code] = await this.write(handle, String(rec.v), opId, deadline,
        ['doc', text, 't', String(Math.floor(Date.now() / 1000))]);
      if (code === 1 || code === 2) return doc;
      rec = await this.read(handle); // v moved: the change is a function of the document
    }
  }

  /** Make a new session's record (a first write by a visitor without one). */
  async create(handle, doc) {
    const text = json.stringify(doc, true);
    const [code] = await this.write(handle, '0', crypto.randomBytes(12).toString('base64url'),
      Date.now() + this.budgetMs,
      ['doc', text, 'base', EMPTY_DOC, 'node', '', 'lrev', '0', 'lv', '0',
        't', String(Math.floor(Date.now() / 1000))]);
    return code === 1 || code === 2;
  }

  /** Run the script until Redis answers; the same op id makes a re-send harmless. */
  async write(handle, expected, opId, deadline, pairs) {
    const args = [expected, String(this.ttlS), '1', '0', opId, ...pairs];
    let attempts = 0;
    for (;;) {
      attempts += 1;
      try {
        return await within(this.evalScript(handle, args), this.commandTimeoutMs);
      } catch (exc) {
        if (exc instanceof ErrorReply && !/^(BUSY|LOADING|TRYAGAIN|MASTERDOWN)/.test(exc.message)) {
          throw exc; // Redis answered with an error: a bug, not an outage
        }
        if (Date.now() + 50 > deadline) {
          throw new OutcomeUnknown(`write ${opId}: no answer after ${attempts} attempts`);
        }
        await pause(50);
      }
    }
  }

  async evalScript(handle, args) {
    const options = { keys: [this.key(handle)], arguments: args };
    try {
      return await this.client.evalSha(SCRIPT_SHA, options);
    } catch (exc) {
      if (!String(exc.message).startsWith('NOSCRIPT')) throw exc;
      return this.client.eval(WRITE_SCRIPT, options);
    }
  }
}

function parseDoc(raw) {
  try {
    const doc = json.parse(raw);
    if (!(doc instanceof Map) || !(doc.get('schema') instanceof json.Num)
        || doc.get('schema').text !== '2') return null;
    for (const part of ['fields', 'extra']) {
      if (doc.has(part) && !(doc.get(part) instanceof Map)) return null;
    }
    return doc;
  } catch {
    return null;
  }
}

module.exports = { Records, Unavailable, OutcomeUnknown, handleOf, EMPTY_DOC, SCRIPT_SHA };
