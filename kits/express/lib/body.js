'use strict';
/** An import's body: read whole up to a limit, or refused with 413 without waiting for it all. */

class TooLarge extends Error {}

/** The body as a Buffer; rejects with TooLarge past `limit` bytes, declared or sent. */
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new TooLarge());
      return;
    }
    const chunks = [];
    let size = 0;
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      fn(value);
    };
    req.on('data', (chunk) => {
      if (done) return; // over the limit: the rest is read and dropped (see refuse)
      size += chunk.length;
      if (size > limit) finish(reject, new TooLarge());
      else chunks.push(chunk);
    });
    req.on('end', () => finish(resolve, Buffer.concat(chunks)));
    req.on('error', (err) => finish(reject, err));
    req.on('aborted', () => finish(reject, new Error('request aborted')));
  });
}

/** After answering early: drop what is still coming, so the client can finish sending and
 *  read the answer; the answer says Connection: close, so the socket ends after it. */
function drain(req) {
  req.resume();
}

module.exports = { TooLarge, readBody, drain };
