'use strict';
// X-Strangler-Identity (docs/protocol.md §6): an EdDSA JWT from the gateway,
// checked against the keys the gateway publishes (its JWKS).

const { createRemoteJWKSet, jwtVerify, errors } = require('jose');

const HANDLE = /^[A-Za-z0-9_-]{43}$/;

class BadToken extends Error {}
class KeysUnavailable extends Error {}

class Verifier {
  /** jwksUrl: the gateway's /.well-known/jwks.json; an unknown kid refetches it, at
   *  most once per cooldownMs. */
  constructor({ jwksUrl, issuer, audience, leewayS = 5, cooldownMs = 1000 }) {
    this.keys = createRemoteJWKSet(new URL(jwksUrl), {
      cooldownDuration: cooldownMs, cacheMaxAge: 10 * 60 * 1000, timeoutDuration: 2000,
    });
    this.options = {
      issuer, audience, algorithms: ['EdDSA'], clockTolerance: leewayS,
      requiredClaims: ['exp', 'iat', 'iss', 'aud', 'sid'],
    };
  }

  /** null for no header (anonymous); else {handle, sub, guest}, or throws BadToken
   *  (answer 401) or KeysUnavailable (the JWKS could not be fetched: answer 503). */
  async identify(header) {
    if (header === undefined) return null;
    let payload;
    try {
      ({ payload } = await jwtVerify(header, this.keys, this.options));
    } catch (exc) {
      if (exc instanceof errors.JWKSTimeout || !(exc instanceof errors.JOSEError)) {
        throw new KeysUnavailable(String(exc));
      }
      throw new BadToken(exc.code || String(exc));
    }
    const { sid, sub, guest } = payload;
    if (typeof sid !== 'string' || !HANDLE.test(sid)) throw new BadToken('sid is not a handle');
    if (typeof sub === 'string' && sub !== '') return { handle: sid, sub, guest: false };
    if (sub === undefined && guest === true) return { handle: sid, sub: null, guest: true };
    throw new BadToken('neither sub nor guest');
  }
}

module.exports = { Verifier, BadToken, KeysUnavailable };
