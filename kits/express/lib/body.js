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

const DRAIN_CAP = 64 * 1024 * 1024;

/** After answering early: read and drop what is still coming, so the client can finish
 *  sending and read the answer on a connection that stays usable. Closing it instead
 *  would reset it under a client still sending, which may then never see the answer.
 *  Past DRAIN_CAP the socket is dropped: nobody sends that much by mistake. */
function drain(req) {
  let seen = 0;
  req.on('data', (chunk) => {
    seen += chunk.length;
    if (seen > DRAIN_CAP) req.socket.destroy();
  });
  req.resume();
}

module.exports = { TooLarge, readBody, drain };
