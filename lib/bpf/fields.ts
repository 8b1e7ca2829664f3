/**
 * Fields the BPF programs write into their records, read as numbers: 64-bit counters and
 * times without a BigInt per field, and start times in the clock ticks `/proc` counts in.
 *
 * @module
 */

import { NS_PER_TICK } from "../tree/proc_parse.ts";

/** A little-endian u64 as a number: exact below 2^53 (ns of uptime for 104 days, sizes). */
export function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

/** `task->start_boottime` (ns) at `at`, in clock ticks after boot, as `/proc` says it. */
export function startTicksAt(v: DataView, at: number): number {
  return Math.floor(u64(v, at) / NS_PER_TICK);
}
