/**
 * Bytes from the kernel and /proc are not promised to be UTF-8. proctree decodes them
 * losslessly: valid UTF-8 becomes the same characters, and every byte that is not part of
 * valid UTF-8 becomes the lone surrogate U+DC00+byte (Python's "surrogateescape"). In JSON
 * such a byte reads `\udcXX`; `bytesOf` turns a string back into the exact bytes.
 *
 * @module
 */

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes bytes to a string, escaping invalid UTF-8 bytes as U+DC80–U+DCFF. */
export function decodeBytes(bytes: Uint8Array): string {
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    // String.fromCharCode on short arrays is several times faster than TextDecoder, and
    // `apply` several times faster than a spread (which walks the iterator): 0.09 against
    // 0.55 µs for a 24-byte path, and an exec decodes several.
    return bytes.length <= 64
      ? String.fromCharCode.apply(null, bytes as unknown as number[])
      : utf8.decode(bytes);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    return decodeLossless(bytes);
  }
}

/**
 * The length from which V8 makes a string by `+` or a template literal a rope (a pair of
 * pointers), and `slice`, a `split` part or a match a view into another string; shorter ones
 * are copied into a new flat string.
 */
const ROPE_MIN_CHARS = 13;

/**
 * `parts` joined by `separator` into one flat string (one part is handed back as it is). V8's
 * `JSON.stringify` keeps to its fast path only while every string it meets is flat; a rope or
 * a view ({@linkcode ROPE_MIN_CHARS}) sends the line down the slow path: a storm's exit line
 * took 1.2 µs instead of 0.55 (measured, all else equal). `Array.prototype.join` builds its
 * result flat. The strings of a line are made with it.
 */
export function flatJoin(parts: readonly string[], separator = ""): string {
  return parts.join(separator);
}

/**
 * `s` as a flat string (see {@linkcode flatJoin}): a copy when it may be a view (a regular
 * expression's match, a `split` part); a shorter one is flat already.
 */
export function flatCopy(s: string): string {
  return s.length < ROPE_MIN_CHARS ? s : flatJoin([s.slice(0, 1), s.slice(1)]);
}

/** Slots of a {@linkcode RecentStrings} (a power of two). */
export const RECENT_STRING_SLOTS = 4096;
/** Longest byte run a {@linkcode RecentStrings} keeps; longer ones are decoded each time. */
export const RECENT_STRING_MAX_BYTES = 256;

/**
 * Decodes byte ranges as {@linkcode decodeBytes} does, and hands back the string it made
 * for the same ASCII bytes before when that is still in its slot: the names, paths and
 * arguments of a storm's execs repeat, and a string shared with an earlier line costs no
 * new memory, nor a copy in each garbage collection while its process is held. Bounded:
 * one string per slot, picked by a hash of the bytes, replaced on a miss; a hit is checked
 * byte by byte, so a collision only costs a decode.
 */
export class RecentStrings {
  #slots: (string | undefined)[] = new Array(RECENT_STRING_SLOTS);

  /** `bytes[start, end)` decoded. */
  decode(bytes: Uint8Array, start: number, end: number): string {
    const length = end - start;
    if (length > RECENT_STRING_MAX_BYTES) return decodeBytes(bytes.subarray(start, end));
    let hash = length;
    let high = 0;
    for (let i = start; i < end; i++) {
      hash = Math.imul(hash ^ bytes[i], 0x01000193); // FNV-1a's prime
      high |= bytes[i];
    }
    if (high >= 0x80) return decodeBytes(bytes.subarray(start, end)); // not 1 byte per char
    const slot = (hash ^ (hash >>> 15)) & (RECENT_STRING_SLOTS - 1);
    const seen = this.#slots[slot];
    if (seen !== undefined && seen.length === length && sameAscii(seen, bytes, start)) return seen;
    const s = decodeBytes(bytes.subarray(start, end));
    this.#slots[slot] = s;
    return s;
  }
}

function sameAscii(s: string, bytes: Uint8Array, start: number): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== bytes[start + i]) return false;
  return true;
}

function seqLength(b: number): number {
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

function decodeLossless(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    }
    const n = seqLength(b);
    if (n > 0 && i + n <= bytes.length) {
      try {
        out += utf8.decode(bytes.subarray(i, i + n));
        i += n;
        continue;
      } catch { /* fall through: escape the lead byte alone */ }
    }
    out += String.fromCharCode(0xdc00 + b);
    i++;
  }
  return out;
}

const encoder = new TextEncoder();

/** The exact bytes a string from {@linkcode decodeBytes} stood for. */
export function bytesOf(s: string): Uint8Array {
  const parts: number[] = [];
  let run = "";
  const flush = () => {
    if (run) parts.push(...encoder.encode(run));
    run = "";
  };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc80 && c <= 0xdcff) {
      flush();
      parts.push(c - 0xdc00);
    } else {
      run += s[i];
    }
  }
  flush();
  return new Uint8Array(parts);
}

/**
 * Makes a string safe to print on a terminal: control characters (C0, DEL, C1), escaped
 * bytes and lone surrogates are shown as `\xNN`/`\u{…}`, and a backslash as `\\`, so that
 * no process name can move the cursor, recolour or rewrite the operator's screen.
 */
export function terminalSafe(s: string): string {
  // deno-lint-ignore no-control-regex
  if (!/[\x00-\x1f\x7f-\x9f\\\ud800-\udfff]/.test(s)) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c) out += "\\\\";
    else if (c >= 0xdc80 && c <= 0xdcff) out += "\\x" + (c - 0xdc00).toString(16);
    else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) out += "\\x" + c.toString(16).padStart(2, "0");
    else if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c < 0xdc00 && next >= 0xdc00 && next <= 0xdfff) {
        out += s[i] + s[i + 1];
        i++;
      } else out += `\\u{${c.toString(16)}}`;
    } else out += s[i];
  }
  return out;
}
