/**
 * Fields the BPF programs write into their records, read as numbers: 64-bit counters and
 * times without a BigInt per field, and start times in the clock ticks `/proc` counts in.
 *
 * @module
 */

/** A little-endian u64 as a number: exact below 2^53 (ns of uptime for 104 days, sizes). */
export function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

/** Nanoseconds per clock tick (`USER_HZ` 100, as `/proc/<pid>/stat` counts start times). */
export const NS_PER_TICK = 10_000_000;

/** `task->start_boottime` (ns) at `at`, in clock ticks after boot, as `/proc` says it. */
export function startTicksAt(v: DataView, at: number): number {
  return Math.floor(u64(v, at) / NS_PER_TICK);
}
