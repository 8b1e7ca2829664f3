/**
 * User names from `/etc/passwd`, read once and re-read (at most every few seconds) when a
 * uid is not found. A uid without an entry is shown as its number.
 *
 * @module
 */

/** Parses passwd lines into uid → name (the first entry of a uid wins, as getpwuid does). */
export function parsePasswd(text: string): Map<number, string> {
  const map = new Map<number, string>();
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || line.startsWith("#")) continue;
    const uid = Number(f[2]);
    if (Number.isInteger(uid) && !map.has(uid)) map.set(uid, f[0]);
  }
  return map;
}

/** Caches uid → user name. */
export class Users {
  #map = new Map<number, string>();
  #loadedAtMs = -Infinity;
  #path: string;
  #read: (path: string) => string;

  /** Reads `path` (passwd format) with `read`, now and again when a uid is missing. */
  constructor(path = "/etc/passwd", read: (path: string) => string = Deno.readTextFileSync) {
    this.#path = path;
    this.#read = read;
    // Loaded now, not at the first event: the first batch must be quick (see warmUp).
    this.#load();
  }

  #load(): void {
    this.#loadedAtMs = Date.now();
    try {
      this.#map = parsePasswd(this.#read(this.#path));
    } catch {
      // Unreadable passwd: numbers only.
    }
  }

  /** The name of `uid`, or the uid as a string; null for an unknown uid. */
  name(uid: number | null): string | null {
    if (uid === null) return null;
    let n = this.#map.get(uid);
    if (n === undefined && Date.now() - this.#loadedAtMs > 5000) {
      this.#load();
      n = this.#map.get(uid);
    }
    return n ?? String(uid);
  }

  /** The uid of a user name, or null when there is none. */
  uidOf(name: string): number | null {
    if (this.#map.size === 0) this.#load();
    for (const [uid, n] of this.#map) if (n === name) return uid;
    return null;
  }
}
