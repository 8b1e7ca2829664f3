/**
 * User names from passwd-format text. The text comes from a loader the caller supplies
 * (`ffi/passwd.ts` reads `/etc/passwd`); it is loaded when the table is made and again, at
 * most every few seconds, when a uid is not found. A uid without an entry is shown as its
 * number.
 *
 * @module
 */

import { flatCopy } from "../text.ts";

/** Parses passwd lines into uid → name (the first entry of a uid wins, as getpwuid does). */
export function parsePasswd(text: string): Map<number, string> {
  const map = new Map<number, string>();
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || line.startsWith("#")) continue;
    const uid = Number(f[2]);
    // Copied: a part of a split is a view into the text, and lines carry names (`flatCopy`).
    if (Number.isInteger(uid) && !map.has(uid)) map.set(uid, flatCopy(f[0]));
  }
  return map;
}

/** How long a missing uid waits before the passwd text is loaded again. */
const RELOAD_MS = 5000;

/** Caches uid → user name. */
export class Users {
  #map = new Map<number, string>();
  #loadedAtMs = -Infinity;
  #load: () => string;
  #generation = 0;

  /**
   * Loads passwd text with `load` now (the first batch of events must be quick), and again
   * when a uid is missing. A loader that throws leaves numbers only.
   */
  constructor(load: () => string) {
    this.#load = load;
    this.#reload();
  }

  #reload(): void {
    this.#loadedAtMs = Date.now();
    this.#generation++;
    try {
      this.#map = parsePasswd(this.#load());
    } catch {
      // Unreadable passwd: numbers only.
    }
  }

  /** The name of `uid`, or the uid as a string; null for an unknown uid. */
  name(uid: number | null): string | null {
    if (uid === null) return null;
    let n = this.#map.get(uid);
    if (n === undefined && Date.now() - this.#loadedAtMs > RELOAD_MS) {
      this.#reload();
      n = this.#map.get(uid);
    }
    return n ?? String(uid);
  }

  /**
   * Counts the loads of the table: names given under one generation stay what
   * {@linkcode name} says until the next (a caller may keep them meanwhile).
   */
  get generation(): number {
    return this.#generation;
  }

  /** Whether `uid` has an entry in the table as loaded now (no load is tried). */
  has(uid: number): boolean {
    return this.#map.has(uid);
  }

  /** The uid of a user name, or null when there is none. */
  uidOf(name: string): number | null {
    if (this.#map.size === 0) this.#reload();
    for (const [uid, n] of this.#map) if (n === name) return uid;
    return null;
  }
}
