/**
 * Kernel event times are CLOCK_MONOTONIC nanoseconds; lines carry ISO-8601 UTC wall time
 * with microseconds. The wall/monotonic offset is measured by the caller (see `ffi/libc.ts`).
 *
 * @module
 */

import { flatJoin } from "./text.ts";

/**
 * Texts of recent times kept (a power of two; one per µs modulo it): a process's lines repeat
 * its start time, and a fork's start is the fork's own time.
 */
export const ISO_MEMO_SLOTS = 1024;

/** Formats monotonic timestamps as wall-clock ISO-8601 strings, `…T12:34:56.123456Z`. */
export class WallClock {
  /** CLOCK_REALTIME − CLOCK_MONOTONIC, in ns. */
  offsetNs: number;
  #second = NaN;
  #prefix = "";
  /** The wall µs each slot's text is of (NaN: none): a text depends on nothing else. */
  readonly #memoUs = new Float64Array(ISO_MEMO_SLOTS).fill(NaN);
  readonly #memoText: string[] = new Array(ISO_MEMO_SLOTS).fill("");
  readonly #parts: string[] = ["", "", "Z"];

  /** A clock with a measured offset (refresh `offsetNs` now and then: NTP steps it). */
  constructor(offsetNs: number) {
    this.offsetNs = offsetNs;
  }

  /** The wall time of a monotonic timestamp, in ns since the epoch. */
  wallNs(monotonicNs: number): number {
    return monotonicNs + this.offsetNs;
  }

  /** ISO-8601 UTC with microseconds. */
  iso(monotonicNs: number): string {
    const us = Math.floor(this.wallNs(monotonicNs) / 1000);
    const slot = us & (ISO_MEMO_SLOTS - 1);
    if (this.#memoUs[slot] === us) return this.#memoText[slot];
    const second = Math.floor(us / 1e6);
    if (second !== this.#second) {
      this.#second = second;
      this.#prefix = new Date(second * 1000).toISOString().slice(0, 20); // "YYYY-MM-DDTHH:MM:SS."
    }
    const parts = this.#parts;
    parts[0] = this.#prefix;
    parts[1] = String(us - second * 1e6).padStart(6, "0");
    const text = flatJoin(parts);
    this.#memoUs[slot] = us;
    this.#memoText[slot] = text;
    return text;
  }
}

/** µs since the epoch of an ISO time with microseconds (`2026-11-29T18:38:22.875220Z`). */
export function isoToUs(iso: string): number {
  const ms = Date.parse(iso);
  const frac = /\.(\d{3})(\d{3})Z$/.exec(iso);
  return ms * 1000 + (frac ? Number(frac[2]) : 0);
}
