'use strict';
/**
 * The response headers and the revision, around each request express-session serves.
 *
 * Mounted after express-session. On every response to a request that carried a
 * session cookie (a valid signed one) or made a session, it adds the profile's
 * three headers: the session the request ended with (its cookie value: the new
 * one after regenerate(), see ids.js), its revision (0 when it does not exist:
 * logged out, or a cookie naming a session this node does not hold) and the node.
 *
 * The revision (record.js) is 1 for a session a request makes -- a first write
 * with saveUninitialized: false, or regenerate() at a login -- and +1 for each
 * request that changed the app's data, judged by a digest of the data before
 * and after. It is settled in res.end, before express-session's own end saves
 * the session (this middleware's wrapper runs first, being mounted later), or
 * when the headers go out, whichever comes first; a change made after the
 * headers have gone still bumps it, unreported.
 *
 * A cookie that is not signed but names a session the store holds (one a new
 * service made and the gateway imported here) is adopted: express-session does
 * not read unsigned cookies, so the session is loaded here, and express-session
 * then sets its signed cookie: to the gateway the session's id changes, as at a
 * login, and its data carries over.
 */

const onHeaders = require('on-headers');

const record = require('./record');
const { PREFIX } = require('./hook');

function sessionHeaders(ctx) {
  const { ids, names, nodeId, imports } = ctx;

  return function stranglerSession(req, res, next) {
    if ((req.originalUrl || req.url).startsWith(PREFIX)) return next();
    // express-session passed this request by (its store disconnected, a cookie path that
    // does not cover it): the node cannot say what it holds, so it says nothing -- a
    // revision 0 would tell the gateway the session ended.
    if (!req.sessionStore) return next();
    const cookieId = ids.fromRequest(req);
    const plain = cookieId === null && req.session ? ids.plainFromRequest(req) : null;
    if (plain === null || plain === req.sessionID) {
      watch(req, res, cookieId);
      return next();
    }
    req.sessionStore.get(plain, (err, sess) => {
      if (err && err.code !== 'ENOENT') return next(err);
      if (sess) {
        req.sessionID = plain;
        req.sessionStore.createSession(req, sess);
      }
      watch(req, res, sess ? plain : null);
      return next();
    });
    return undefined;
  };

  /** Settle the revision and stamp the headers at res.end or at the headers, first come. */
  function watch(req, res, cookieId) {
    const startId = req.sessionID;
    const startDigest = req.session ? record.digest(req.session) : null;
    let lastDigest = startDigest;
    let made = false;

    function settle() {
      const sess = req.session;
      if (!sess) return cookieId ? [cookieId, 0] : null; // destroyed, or none
      const now = record.digest(sess);
      const continuing = cookieId !== null && req.sessionID === cookieId && startId === cookieId;
      if (!continuing && !made) {
        if (req.sessionID === startId && now === startDigest) {
          return cookieId ? [cookieId, 0] : null; // untouched: express-session will not save it
        }
        sess[record.RESERVED] = { rev: 1, exact: {} }; // made by this request
        made = true;
        lastDigest = now;
      } else if (now !== lastDigest) {
        bump(sess, imports.get(req.sessionID) || 0);
        lastDigest = now;
      }
      return [req.sessionID, record.revision(sess)];
    }

    function stamp() {
      const settled = settle();
      if (settled === null || res.headersSent) return;
      res.setHeader(names.sessionId, ids.wire(settled[0]));
      res.setHeader(names.revision, String(settled[1]));
      res.setHeader(names.node, nodeId);
    }

    onHeaders(res, stamp);
    const end = res.end;
    res.end = function strangledEnd(...args) {
      stamp();
      return end.apply(this, args);
    };
  }
}

/** +1 on the revision the request loaded -- or on the one an import made meanwhile, if
 *  higher: the request then overwrites that import (express-session saves what it loaded),
 *  and the gateway must see a revision it did not make, never its own on other data. */
function bump(sess, importedMeanwhile) {
  const m = record.meta(sess);
  if (m) {
    m.rev = Math.max(m.rev, importedMeanwhile) + 1;
    record.pruneExact(sess);
  } else {
    sess[record.RESERVED] = { rev: Math.max(1, importedMeanwhile) + 1, exact: {} };
  }
}

module.exports = { sessionHeaders };
