/**
 * Process identity for log stores: a pid alone is reused within minutes, so every process
 * record carries an `id` that names one process incarnation on one boot of one host.
 *
 * `id` = `<boot>.<start>.<pid>`: the first 8 bytes of the kernel's boot id
 * (`/proc/sys/kernel/random/boot_id`, random per boot) in base64url (11 characters), the
 * process's start time in clock ticks after boot (`/proc/<pid>/stat` field 22) in base 36,
 * and the pid in base 36 — e.g. `q3f8K0xPbE4.5kq1w.2vx`. URL-safe, about 24 characters.
 * Two processes share an id only if they had the same pid in the same 10 ms of the same
 * boot, which pid allocation does not allow.
 *
 * @module
 */

import { flatJoin } from "../text.ts";
import { NS_PER_TICK } from "./proc_parse.ts";

/** The boot part of every id on this boot: 8 bytes of the boot id, base64url. */
export function bootTag(bootId: string): string {
  const hex = bootId.replaceAll("-", "").trim().slice(0, 16);
  if (!/^[0-9a-f]{16}$/i.test(hex)) return "noboot";
  const bytes = new Uint8Array(8);
  for (let i = 0; i < 8; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** The id of process `pid` that started `startTicks` ticks after boot. */
export function processId(boot: string, startTicks: number, pid: number): string {
  return flatJoin([boot, startTicks.toString(36), pid.toString(36)], ".");
}

/** Start ticks of a start seen as a CLOCK_MONOTONIC time (`bootOffsetNs`: boottime − monotonic). */
export function ticksOf(monotonicNs: number, bootOffsetNs: number): number {
  return Math.floor((monotonicNs + bootOffsetNs) / NS_PER_TICK);
}

/** The CLOCK_MONOTONIC time of a start known only in ticks. */
export function monotonicOfTicks(startTicks: number, bootOffsetNs: number): number {
  return startTicks * NS_PER_TICK - bootOffsetNs;
}

/** Whether `s` has the form of an id (for `--under ID`). */
export function isProcessId(s: string): boolean {
  return /^[A-Za-z0-9_-]{6,}\.[0-9a-z]+\.[0-9a-z]+$/.test(s);
}
