'use strict';
/** One thing at a time per key, in this process: imports of one session never interleave. */

class KeyedQueue {
  constructor() {
    this.tails = new Map();
  }

  /** Run `fn` (async) once every earlier call for `key` has settled; its result or error. */
  run(key, fn) {
    const before = this.tails.get(key) || Promise.resolve();
    const mine = before.then(fn, fn);
    const tail = mine.then(() => undefined, () => undefined);
    this.tails.set(key, tail);
    tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return mine;
  }
}

module.exports = { KeyedQueue };
