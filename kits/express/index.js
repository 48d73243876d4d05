'use strict';
/**
 * strangler-express: Strangler's session-export hook for an Express app on express-session.
 *
 *     const kit = strangler({nodeId: 'a', internalTokenFile: '/run/secrets/internal-token',
 *                            secret: SECRET, cookieName: 'sid', store,
 *                            headers: {sessionId: 'X-App-Session', revision: 'X-App-Rev',
 *                                      node: 'X-App-Node'}});
 *     app.use(kit.router);                       // /_internal/sessions/{sid}, before body parsers
 *     app.use(session({secret: SECRET, name: 'sid', store, resave: false,
 *                      saveUninitialized: false}));
 *     app.use(kit);                              // the headers and the revision
 *
 * See README.md for what each part does and why.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const { createRequire } = require('node:module');

const { Hook } = require('./lib/hook');
const { Ids } = require('./lib/ids');
const { sessionHeaders } = require('./lib/middleware');
const record = require('./lib/record');

const DEFAULT_MAX_IMPORT_BYTES = 256 * 1024;

/** The middleware (mount it after express-session), with `.router` (the hook), `.store`
 *  and `.bootId` (a value new at every start, for the app's health answer). */
function strangler(options = {}) {
  const nodeId = need(options.nodeId, 'nodeId');
  const names = options.headers || {};
  for (const key of ['sessionId', 'revision', 'node']) need(names[key], `headers.${key}`);
  const secrets = [].concat(options.secret || []);
  if (secrets.length === 0 || !secrets.every((s) => typeof s === 'string' && s)) {
    throw new TypeError('strangler: secret must be express-session\'s secret (a string or a list)');
  }
  const maxImportBytes = options.maxImportBytes ?? DEFAULT_MAX_IMPORT_BYTES;
  if (!Number.isSafeInteger(maxImportBytes) || maxImportBytes < 1024) {
    throw new TypeError('strangler: maxImportBytes must be an integer >= 1024');
  }
  const store = options.store || defaultStore();
  for (const method of ['get', 'set', 'destroy']) {
    if (typeof store[method] !== 'function') {
      throw new TypeError(`strangler: store must implement ${method}(): give express-session's store`);
    }
  }
  const ids = new Ids(options.cookieName || 'connect.sid', secrets);
  const hook = new Hook({ nodeId, token: readToken(options), ids, store, maxImportBytes,
    newCookie: cookieMaker(options.cookie || {}) });

  const middleware = sessionHeaders({ ids, names, nodeId, imports: hook.imports });
  middleware.router = (req, res, next) => hook.handle(req, res, next);
  middleware.store = store;
  middleware.bootId = crypto.randomBytes(12).toString('base64url');
  return middleware;
}

/** The app's data of a session (without express-session's cookie and the kit's record). */
function sessionData(sess) {
  const out = {};
  for (const key of record.dataKeys(sess || {})) out[key] = sess[key];
  return out;
}

function need(value, name) {
  if (typeof value !== 'string' || !value) throw new TypeError(`strangler: ${name} must be a non-empty string`);
  return value;
}

/** internalToken, or the trimmed contents of internalTokenFile; none or blank: the hook is
 *  off (503), as the protocol says for a node without a token. */
function readToken(options) {
  if (options.internalToken !== undefined && options.internalTokenFile !== undefined) {
    throw new TypeError('strangler: give internalToken or internalTokenFile, not both');
  }
  const token = options.internalTokenFile !== undefined
    ? fs.readFileSync(options.internalTokenFile, 'utf8')
    : options.internalToken || '';
  return token.trim() || null;
}

/** The cookie data of a session an import creates, as express-session's Cookie writes it. */
function cookieMaker(opts) {
  return () => {
    const maxAge = opts.maxAge ?? null;
    return {
      originalMaxAge: maxAge,
      expires: maxAge === null ? null : new Date(Date.now() + maxAge).toISOString(),
      secure: opts.secure,
      httpOnly: opts.httpOnly ?? true,
      domain: opts.domain,
      path: opts.path ?? '/',
      sameSite: opts.sameSite,
    };
  };
}

/** express-session's MemoryStore, loaded from the app (the kit may be linked from elsewhere). */
function defaultStore() {
  const from = require.main ? require.main.filename : `${process.cwd()}/index.js`;
  const { MemoryStore } = createRequire(from)('express-session');
  return new MemoryStore();
}

module.exports = strangler;
module.exports.strangler = strangler;
module.exports.sessionData = sessionData;
