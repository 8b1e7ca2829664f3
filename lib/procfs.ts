/**
 * Reading `/proc/<pid>`: parsers for `stat`, `status` and `cmdline` (pure, tested on byte
 * fixtures) and the {@linkcode ProcReader} interface (`ffi/procfs.ts` reads the real `/proc`:
 * Deno's file API needs --allow-all for it). Every read answers null when the process is
 * gone or the file is not readable: a missing fact is null, never a guess.
 *
 * @module
 */

import { decodeBytes } from "./text.ts";

/** What `/proc/<pid>/stat` says about a process. */
export interface StatInfo {
  pid: number;
  /** The kernel's 15-byte name (decoded as in `text.ts`). */
  comm: string;
  /** One-letter state: R, S, D, Z, … */
  state: string;
  ppid: number;
  /** Start time in clock ticks after boot (field 22). */
  startTicks: number;
}

/** Clock ticks per second of `/proc` times (USER_HZ, fixed at 100 on Linux ABIs). */
export const TICKS_PER_SECOND = 100;

/** Parses `/proc/<pid>/stat`. The name may hold spaces and parentheses: it ends at the last `)`. */
export function parseStat(bytes: Uint8Array): StatInfo | null {
  const open = bytes.indexOf(0x28); // (
  const close = bytes.lastIndexOf(0x29); // )
  if (open < 0 || close < open) return null;
  const pid = Number(String.fromCharCode(...bytes.subarray(0, open)).trim());
  const comm = decodeBytes(bytes.subarray(open + 1, close));
  let rest = "";
  for (let i = close + 2; i < bytes.length; i++) rest += String.fromCharCode(bytes[i]);
  const f = rest.split(" ");
  // f[0] is field 3 (state), so field N is f[N - 3].
  const ppid = Number(f[1]);
  const startTicks = Number(f[19]);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || !Number.isFinite(startTicks)) {
    return null;
  }
  return { pid, comm, state: f[0], ppid, startTicks };
}

/** Real and effective uid from `/proc/<pid>/status`. */
export function parseStatusUids(text: string): { ruid: number; euid: number } | null {
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(text);
  return m ? { ruid: Number(m[1]), euid: Number(m[2]) } : null;
}

/**
 * Splits `/proc/<pid>/cmdline`. Empty (a zombie, a kernel thread, or gone) is null. A
 * process that rewrote its argument area may leave no trailing NUL; all its bytes are kept.
 */
export function parseCmdline(bytes: Uint8Array): string[] | null {
  if (bytes.length === 0) return null;
  const end = bytes[bytes.length - 1] === 0 ? bytes.length - 1 : bytes.length;
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i <= end; i++) {
    if (i === end || bytes[i] === 0) {
      out.push(decodeBytes(bytes.subarray(from, i)));
      from = i + 1;
    }
  }
  return out;
}

/** Access to `/proc`, replaceable for tests and for faster readers. */
export interface ProcReader {
  stat(pid: number): StatInfo | null;
  cmdline(pid: number): string[] | null;
  exe(pid: number): string | null;
  euid(pid: number): number | null;
  /** Every process id in `/proc` now. */
  pids(): number[];
}

/** One process as a `/proc` snapshot sees it. */
export interface SnapshotEntry extends StatInfo {
  euid: number | null;
}

/** Reads every process's stat and uid; processes that vanish meanwhile are left out. */
export function snapshot(reader: ProcReader): SnapshotEntry[] {
  const out: SnapshotEntry[] = [];
  for (const pid of reader.pids()) {
    const st = reader.stat(pid);
    if (st) out.push({ ...st, euid: reader.euid(pid) });
  }
  return out;
}
