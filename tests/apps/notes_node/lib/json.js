'use strict';
// Lossless JSON: the shared document's `extra` must go back to Redis value for
// value (docs/protocol.md §5), and JSON.parse cannot promise that: it turns
// 1.0 into 1, loses integers past 2^53 and reorders keys that look like array
// indices. Here numbers keep their text (a Num), objects are Maps (insertion
// order, like the dict the monolith exported), and the writer escapes the way
// the notes monolith does (Python's json.dumps with ensure_ascii), so answers
// are byte for byte what the monolith would send.

class Num {
  constructor(text) { this.text = String(text); }
  valueOf() { return Number(this.text); }
  get isInteger() { return /^-?\d+$/.test(this.text); }
}

class JsonError extends Error {}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const ESC = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/** Parse JSON text. Refuses NaN/Infinity, numbers that overflow a double, raw
 *  control characters in strings, and nesting past maxDepth. */
function parse(text, maxDepth = 512) {
  let i = 0;
  const fail = (why) => { throw new JsonError(`${why} at ${i}`); };
  const skip = () => { while (i < text.length && WS.has(text.charCodeAt(i))) i++; };
  function value(depth) {
    skip();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) fail('too deep');
      return c === '{' ? object(depth + 1) : array(depth + 1);
    }
    if (c === '"') return string();
    if (text.startsWith('true', i)) { i += 4; return true; }
    if (text.startsWith('false', i)) { i += 5; return false; }
    if (text.startsWith('null', i)) { i += 4; return null; }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail('unexpected character');
    i += m[0].length;
    if ((m[1] || m[2]) && !Number.isFinite(Number(m[0]))) fail('number overflows a double');
    return new Num(m[0]);
  }
  function object(depth) {
    i++;
    const out = new Map();
    skip();
    if (text[i] === '}') { i++; return out; }
    for (;;) {
      skip();
      if (text[i] !== '"') fail('expected a key');
      const key = string();
      skip();
      if (text[i++] !== ':') fail('expected :');
      out.set(key, value(depth));
      skip();
      const c = text[i++];
      if (c === '}') return out;
      if (c !== ',') fail('expected , or }');
    }
  }
  function array(depth) {
    i++;
    const out = [];
    skip();
    if (text[i] === ']') { i++; return out; }
    for (;;) {
      out.push(value(depth));
      skip();
      const c = text[i++];
      if (c === ']') return out;
      if (c !== ',') fail('expected , or ]');
    }
  }
  function string() {
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const code = text.charCodeAt(i);
      if (code === 0x22) { out += text.slice(start, i); i++; return out; }
      if (code < 0x20) fail('control character in a string');
      if (code === 0x5c) {
        out += text.slice(start, i);
        const e = text[i + 1];
        if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else if (e in ESC) {
          out += ESC[e];
          i += 2;
        } else {
          fail('bad escape');
        }
        start = i;
        continue;
      }
      i++;
    }
  }
  const result = value(0);
  skip();
  if (i !== text.length) fail('extra data');
  return result;
}

function quote(s) {
  let out = '"';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += s[k];
  }
  return out + '"';
}

/** Write a value as Python's json.dumps(ensure_ascii=True) does; `compact` uses the
 *  separators (",", ":"), as the gateway writes the shared document. Plain JS
 *  objects and numbers are accepted too (integers only: a computed float has no
 *  single right spelling). */
function stringify(value, compact = false) {
  const [comma, colon] = compact ? [',', ':'] : [', ', ': '];
  function write(v) {
    if (v === null || v === undefined) return 'null';
    if (v === true) return 'true';
    if (v === false) return 'false';
    if (v instanceof Num) return v.text;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new TypeError(`refusing to write ${v}`);
      return String(v);
    }
    if (typeof v === 'string') return quote(v);
    if (Array.isArray(v)) return '[' + v.map(write).join(comma) + ']';
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
    return '{' + entries.map(([k, x]) => quote(k) + colon + write(x)).join(comma) + '}';
  }
  return write(value);
}

/** How deeply arrays and objects nest (a scalar: 0), as the monolith counts it. */
function depth(value) {
  let deepest = 0;
  const stack = [[value, 1]];
  while (stack.length) {
    const [item, level] = stack.pop();
    let children;
    if (item instanceof Map) children = [...item.values()];
    else if (Array.isArray(item)) children = item;
    else continue;
    deepest = Math.max(deepest, level);
    for (const child of children) stack.push([child, level + 1]);
  }
  return deepest;
}

module.exports = { Num, JsonError, parse, stringify, depth };
