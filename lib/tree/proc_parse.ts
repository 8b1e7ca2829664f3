/**
 * Reading `/proc/<pid>`: parsers for `stat`, `status` and `cmdline` (pure, tested on byte
 * fixtures) and the {@linkcode ProcReader} interface (`ffi/procfs.ts` reads the real `/proc`:
 * Deno's file API needs --allow-all for it). Every read answers null when the process is
 * gone or the file is not readable: a missing fact is null, never a guess.
 *
 * @module
 */

import { decodeBytes, type RecentStrings } from "../text.ts";
import { type Container, containerOf } from "./container.ts";

/** What `/proc/<pid>/stat` says about a process. */
export interface StatInfo {
  /** Process id. */
  pid: number;
  /** The kernel's 15-byte name (decoded as in `text.ts`). */
  comm: string;
  /** One-letter state: R, S, D, Z, … */
  state: string;
  /** Parent process id. */
  ppid: number;
  /** Start time in clock ticks after boot (field 22). */
  startTicks: number;
  /** Threads in the process (field 20). */
  threads: number;
  /** The kernel's `PF_*` flags of its main thread (field 9). */
  flags: number;
}

/** `PF_EXITING` in {@linkcode StatInfo.flags}: the process has begun to exit (`do_exit`). */
export const PF_EXITING = 0x4;

/**
 * Said instead of a path when the file a process runs (or the kernel opened for its exec)
 * is not the file its path reaches from proctree's mount namespace: the exec is then named
 * `null`, never after the other file. (Not a path: paths from the kernel start with `/`.)
 */
export const NOT_HERE = "<not reachable by its path here>";

/** Clock ticks per second of `/proc` times (USER_HZ, fixed at 100 on Linux ABIs). */
export const TICKS_PER_SECOND = 100;

/** Nanoseconds per clock tick of {@linkcode TICKS_PER_SECOND}. */
export const NS_PER_TICK = 1e9 / TICKS_PER_SECOND;

/**
 * A file's identity as proctree compares it: `major:minor:inode` of its device and inode
 * (`statx` of a path or descriptor, or what a BPF program read in the kernel).
 */
export function fileIdText(major: number, minor: number, inode: number | bigint): string {
  return `${major}:${minor}:${inode}`;
}

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
  const threads = Number(f[17]);
  const flags = Number(f[6]);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || !Number.isFinite(startTicks)) {
    return null;
  }
  return {
    pid,
    comm,
    state: f[0],
    ppid,
    startTicks,
    threads: Number.isInteger(threads) ? threads : 1,
    flags: Number.isInteger(flags) ? flags : 0,
  };
}

/** What an exec needs from `/proc/<pid>/status`: one read instead of stat + status. */
export interface StatusInfo {
  /** The kernel's name (status escapes only `\n` and `\\` in it; undone here). */
  comm: string;
  /** Parent process id. */
  ppid: number;
  /** Effective uid. */
  euid: number;
  /** The process tracing it (ptrace), 0 when none. */
  tracerPid: number;
  /**
   * It has exited (state `Z` or `X`): its memory, executable and working directory are
   * gone, so `cmdline`, `exe` and `cwd` have nothing to say and are not read.
   */
  exited: boolean;
}

const NL = 0x0a;

function lineValue(bytes: Uint8Array, key: string, from: number): [number, number] | null {
  // Keys are at line starts; values follow a tab.
  outer: for (let i = from; i < bytes.length; i = bytes.indexOf(NL, i) + 1 || bytes.length) {
    for (let k = 0; k < key.length; k++) if (bytes[i + k] !== key.charCodeAt(k)) continue outer;
    const start = i + key.length + 1;
    const end = bytes.indexOf(NL, start);
    return [start, end < 0 ? bytes.length : end];
  }
  return null;
}

function unescapeName(raw: Uint8Array): Uint8Array {
  if (raw.indexOf(0x5c) < 0) return raw;
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x6e) {
      out.push(NL);
      i++;
    } else if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      out.push(0x5c);
      i++;
    } else out.push(raw[i]);
  }
  return new Uint8Array(out);
}

function digits(bytes: Uint8Array, start: number): number {
  let n = 0;
  let i = start;
  for (; i < bytes.length && bytes[i] >= 0x30 && bytes[i] <= 0x39; i++) {
    n = n * 10 + bytes[i] - 0x30;
  }
  return i === start ? NaN : n;
}

/** Parses name, parent and effective uid from `/proc/<pid>/status` bytes. */
export function parseStatus(bytes: Uint8Array): StatusInfo | null {
  const name = lineValue(bytes, "Name:", 0);
  if (!name) return null;
  const state = lineValue(bytes, "State:", name[1]);
  const ppid = lineValue(bytes, "PPid:", state ? state[1] : name[1]);
  const tracer = ppid && lineValue(bytes, "TracerPid:", ppid[1]);
  const uid = lineValue(bytes, "Uid:", tracer ? tracer[1] : ppid ? ppid[1] : name[1]);
  if (!ppid || !uid) return null;
  const tracerPid = tracer ? digits(bytes, tracer[0]) : 0;
  // "Uid:\treal\teffective\tsaved\tfs"
  const tab = bytes.indexOf(0x09, uid[0]);
  const euid = tab < 0 ? NaN : digits(bytes, tab + 1);
  const p = digits(bytes, ppid[0]);
  if (Number.isNaN(euid) || Number.isNaN(p)) return null;
  return {
    comm: decodeBytes(unescapeName(bytes.subarray(name[0], name[1]))),
    ppid: p,
    euid,
    tracerPid: Number.isNaN(tracerPid) ? 0 : tracerPid,
    exited: state !== null && (bytes[state[0]] === 0x5a || bytes[state[0]] === 0x58), // Z, X
  };
}

/** The list `parseCmdline` splits into, reused while it has held at most this many arguments. */
const SPLIT_SCRATCH_MAX = 1024;
let splitScratch: string[] = [];

/**
 * Splits `/proc/<pid>/cmdline` (`bytes[start, end)`: the whole array unless said). Empty (a
 * zombie, a kernel thread, or gone) is null. A process that rewrote its argument area may
 * leave no trailing NUL; all its bytes are kept. `strings`: decodes through it (its strings
 * shared while they repeat).
 */
export function parseCmdline(
  bytes: Uint8Array,
  strings?: RecentStrings,
  start = 0,
  end = bytes.length,
): string[] | null {
  if (end <= start) return null;
  const last = bytes[end - 1] === 0 ? end - 1 : end;
  // Split into a reused list, then copied at its exact length: the copy is held as long as
  // its process, and a list grown by push for each exec was garbage at once.
  const out = splitScratch;
  let count = 0;
  let from = start;
  for (let i = start; i <= last; i++) {
    if (i === last || bytes[i] === 0) {
      out[count++] = strings
        ? strings.decode(bytes, from, i)
        : decodeBytes(bytes.subarray(from, i));
      from = i + 1;
    }
  }
  const argv = out.slice(0, count);
  if (out.length > SPLIT_SCRATCH_MAX) splitScratch = [];
  return argv;
}

/** `/proc/<pid>/loginuid` says this when no login set it (`(uid_t)-1`). */
export const UNSET_LOGIN_UID = 4294967295;

/** Parses `/proc/<pid>/loginuid`: the uid of the login session, or null when unset. */
export function parseLoginUid(text: string): number | null {
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= 0 && n < UNSET_LOGIN_UID && text.trim() !== "" ? n : null;
}

/** Access to `/proc`, replaceable for tests and for faster readers. */
export interface ProcReader {
  /** `/proc/<pid>/stat`, parsed. */
  stat(pid: number): StatInfo | null;
  /** Name, parent and effective uid from `/proc/<pid>/status`. */
  status(pid: number): StatusInfo | null;
  /** `/proc/<pid>/cmdline`, split. */
  cmdline(pid: number): string[] | null;
  /**
   * The target of `/proc/<pid>/exe`, exact bytes as in `text.ts`; {@linkcode NOT_HERE} when
   * that path reaches another file from here.
   */
  exe(pid: number): string | null;
  /** The target of `/proc/<pid>/cwd`, exact bytes as in `text.ts`. */
  cwd(pid: number): string | null;
  /** `/proc/<pid>/loginuid`: undefined when not readable, null when unset. */
  loginUid(pid: number): number | null | undefined;
  /** The text of `/proc/<pid>/cgroup`. */
  cgroup(pid: number): string | null;
  /** The thread ids in `/proc/<pid>/task` (empty when gone). */
  tasks(pid: number): number[];
  /** Every process id in `/proc` now. */
  pids(): number[];
}

/**
 * A `/proc` in which every process is already gone: what a storm's short-lived processes
 * show, for the fuzzer and the pipeline benchmark.
 */
export const GONE_PROC: ProcReader = Object.freeze({
  stat: () => null,
  status: () => null,
  cmdline: () => null,
  exe: () => null,
  cwd: () => null,
  loginUid: () => undefined,
  cgroup: () => null,
  tasks: () => [],
  pids: () => [],
});

/** One process as a `/proc` snapshot sees it. */
export interface SnapshotEntry extends StatInfo {
  /** Effective uid; null when not readable. */
  euid: number | null;
  /** Its container; null: none; undefined: not readable. */
  container?: Container | null;
  /** Its threads besides the main one (read only for multi-threaded processes). */
  tids?: number[];
}

/** Reads every process's stat and uid; processes that vanish meanwhile are left out. */
export function snapshot(reader: ProcReader): SnapshotEntry[] {
  const out: SnapshotEntry[] = [];
  for (const pid of reader.pids()) {
    const st = reader.stat(pid);
    if (!st) continue;
    const e: SnapshotEntry = { ...st, euid: reader.status(pid)?.euid ?? null };
    const container = containerOf(reader.cgroup(pid));
    if (container !== undefined) e.container = container;
    if (st.threads > 1) e.tids = reader.tasks(pid).filter((t) => t !== pid);
    out.push(e);
  }
  return out;
}
