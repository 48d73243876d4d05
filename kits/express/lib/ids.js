'use strict';
/**
 * The session id the gateway speaks, and the store's id behind it.
 *
 * express-session signs its cookie: the browser holds
 * encodeURIComponent("s:" + id + "." + HMAC), and the store knows the session
 * by the bare id. The gateway knows a session only by its cookie value (it
 * names the session to the hook and must match the id header), so the kit
 * speaks the cookie value: the id header reports it, the hook's {sid} is it.
 * On the hook, a signed value is checked and opened to the store id; a value
 * that is not signed (hookcheck's generated ids, a session a new service
 * made) is taken as a store id as it is.
 */

const cookie = require('cookie');
const signature = require('cookie-signature');

const PLAIN_ID = /^[A-Za-z0-9_-]{8,256}$/;

class Ids {
  /** secrets: express-session's `secret` (a string or a list; the first one signs). */
  constructor(cookieName, secrets) {
    this.cookieName = cookieName;
    this.secrets = secrets;
  }

  /** The cookie value express-session sets for a store id: what the gateway calls the session. */
  wire(storeId) {
    return encodeURIComponent('s:' + signature.sign(storeId, this.secrets[0]));
  }

  /** The store id a wire id names, or null when it names none (a bad signature). */
  storeId(wireId) {
    const value = tryDecode(wireId);
    if (value.startsWith('s:')) return this.unsign(value.slice(2));
    return PLAIN_ID.test(value) ? value : null;
  }

  /** The store id of the request's session cookie, read as express-session reads it (the
   *  first one, percent-decoded, signature checked), or null. */
  fromRequest(req) {
    const header = req.headers.cookie;
    if (!header) return null;
    const raw = cookie.parse(header)[this.cookieName];
    if (!raw || !raw.startsWith('s:')) return null;
    return this.unsign(raw.slice(2));
  }

  /** The request's session cookie when it is not signed but could be a store id, else null. */
  plainFromRequest(req) {
    const header = req.headers.cookie;
    if (!header) return null;
    const raw = cookie.parse(header)[this.cookieName];
    return raw && !raw.startsWith('s:') && PLAIN_ID.test(raw) ? raw : null;
  }

  unsign(signed) {
    for (const secret of this.secrets) {
      const id = signature.unsign(signed, secret);
      if (id !== false) return id;
    }
    return null;
  }
}

function tryDecode(text) {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

module.exports = { Ids };
