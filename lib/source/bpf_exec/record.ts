/**
 * Decoding the exec-facts records of the BPF program (`program.ts`): fixed fields, the
 * path as passed, and argv exactly as the new image received it.
 *
 * @module
 */

import { startTicksAt, u64 } from "../../bpf/fields.ts";
import { RecentStrings } from "../../text.ts";
import { fileIdText, parseCmdline, UNSET_LOGIN_UID } from "../../tree/proc_parse.ts";
import {
  ARGV_CAP_BYTES,
  COMM_BYTES,
  FILENAME_BYTES,
  PATH_CAP_BYTES,
  PathWalk,
  Rec,
} from "./program.ts";

/** The facts of one exec, as the kernel held them inside `execve`. */
export interface BpfExec {
  /** CLOCK_MONOTONIC ns, taken just before the connector's event of the same exec. */
  ktimeNs: number;
  /** The process (after exec the calling thread leads it). */
  tgid: number;
  /** The parent (`real_parent`) at the exec. */
  ppid: number;
  /** Real uid. */
  uid: number;
  /** Real gid. */
  gid: number;
  /** Effective uid of the new credentials. */
  euid: number;
  /** Login uid; null when unset. */
  loginUid: number | null;
  /** Start time in clock ticks after boot (as `/proc/<pid>/stat` says it). */
  startTicks: number;
  /** The new name. */
  comm: string;
  /** The path as passed to `execve` (relative, or `/dev/fd/N`, as given); cut at 255 bytes. */
  filename: string;
  /** The path of the file that runs (`#!`: its interpreter), as the kernel was given it. */
  interp: string;
  /** That file's identity (`fileIdText`); null: unread. */
  exeId: string | null;
  /**
   * That file's path from the root of its mount namespace, walked inside `execve` (`/` and
   * its names, exact bytes as in `text.ts`); null when the walk did not reach the root. Only
   * a name until checked against `exeId`.
   */
  exePath: string | null;
  /** The working directory's identity (`fileIdText`); null: unread. */
  cwdId: string | null;
  /**
   * The working directory's path, walked inside `execve` as {@linkcode BpfExec.exePath} is;
   * null when the walk did not reach the root. Only a name until checked against `cwdId`.
   */
  cwdPath: string | null;
  /** Cgroup moves the host had counted at the exec (see `program.ts`); null: not counted. */
  cgroupMoves: number | null;
  /** The task's cgroups were its parent's at the exec. */
  sameCgroups: boolean;
  /** argv; null when the new image's memory could not be read. */
  argv: string[] | null;
  /** argv's true length in bytes. */
  argvBytes: number;
  /** argv was longer than {@linkcode ARGV_CAP_BYTES}: the last element is cut. */
  argvTruncated: boolean;
  /** The record's own size in the ring buffer (what holding it costs). */
  recordBytes: number;
}

/**
 * The record's strings repeat from exec to exec (a storm runs one program from one
 * directory): decoded once while they keep coming, shared by every line after.
 */
const strings = new RecentStrings();

/** The NUL-terminated string in `r[from, from + max)`. */
function cString(r: Uint8Array, from: number, max: number): string {
  const end = r.indexOf(0, from);
  return strings.decode(r, from, end < 0 || end > from + max ? from + max : end);
}

/** The file's identity (`fileIdText`) from the kernel's `dev_t` and inode; null: none read. */
function fileId(v: DataView, devAt: number, inoAt: number): string | null {
  const dev = v.getUint32(devAt, true);
  // Past a number's exact integers (2^53), an inode is read as a BigInt.
  const exact = v.getUint32(inoAt + 4, true) < 2 ** 21;
  const ino = exact ? u64(v, inoAt) : v.getBigUint64(inoAt, true);
  return ino === 0 ? null : fileIdText(dev >>> 20, dev & 0xfffff, ino);
}

/** Decodes one record; null when it is shorter than its fixed part says (never trusted). */
export function decodeBpfExec(r: Uint8Array): BpfExec | null {
  if (r.length < Rec.header) return null;
  const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
  const argvBytes = u64(v, Rec.argvBytes);
  const carried = Math.min(argvBytes, ARGV_CAP_BYTES);
  const pathBytes = v.getUint32(Rec.pathBytes, true);
  const cwdBytes = v.getUint32(Rec.cwdBytes, true);
  if (pathBytes > PATH_CAP_BYTES || cwdBytes > PATH_CAP_BYTES) return null;
  if (r.length !== Rec.header + carried + pathBytes + cwdBytes) return null;
  const pathAt = Rec.header + carried;
  const cwdAt = pathAt + pathBytes;
  const login = v.getUint32(Rec.loginUid, true);
  const argvOk = v.getInt32(Rec.argvRead, true) === 0;
  return {
    ktimeNs: u64(v, Rec.ktimeNs),
    tgid: v.getUint32(Rec.tgid, true),
    ppid: v.getUint32(Rec.ppid, true),
    uid: v.getUint32(Rec.uid, true),
    gid: v.getUint32(Rec.gid, true),
    euid: v.getUint32(Rec.euid, true),
    loginUid: login === UNSET_LOGIN_UID ? null : login,
    startTicks: startTicksAt(v, Rec.startBoottimeNs),
    comm: cString(r, Rec.comm, COMM_BYTES),
    filename: cString(r, Rec.filename, FILENAME_BYTES),
    interp: cString(r, Rec.interp, FILENAME_BYTES),
    exeId: fileId(v, Rec.exeDev, Rec.exeIno),
    exePath: v.getUint32(Rec.pathWalk, true) === PathWalk.ROOT
      ? walkedPath(r, pathAt, cwdAt)
      : null,
    cwdId: fileId(v, Rec.cwdDev, Rec.cwdIno),
    // No names: the directory is the namespace's root.
    cwdPath: v.getUint32(Rec.cwdWalk, true) !== PathWalk.ROOT
      ? null
      : cwdBytes === 0
      ? "/"
      : walkedPath(r, cwdAt, cwdAt + cwdBytes),
    cgroupMoves: v.getUint32(Rec.cgroupMoves + 4, true) === 0xffffffff
      ? null
      : u64(v, Rec.cgroupMoves),
    sameCgroups: v.getUint32(Rec.sameCgroups, true) === 1,
    argv: argvOk ? parseCmdline(r, strings, Rec.header, pathAt) ?? [] : null,
    argvBytes,
    argvTruncated: argvBytes > ARGV_CAP_BYTES,
    recordBytes: r.length,
  };
}

const SLASH = 0x2f;
let pathScratch = new Uint8Array(PATH_CAP_BYTES);

/**
 * The path the program's walk wrote into `r[start, end)`: names from the file up, each ending
 * in NUL. Null when a name is empty or holds a `/` (never from a real dentry: the record is
 * not trusted).
 */
export function walkedPath(r: Uint8Array, start: number, end: number): string | null {
  const length = end - start;
  if (length <= 0) return null; // the file is the namespace's root: not a program
  if (r[end - 1] !== 0) return null;
  // The path is as long as the names with their NULs (each NUL becomes the `/` before its
  // name): written back to front into one buffer, decoded once.
  const path = pathScratch.length >= length ? pathScratch : (pathScratch = new Uint8Array(length));
  let at = 0;
  let nameEnd = end - 1;
  for (let i = nameEnd - 1; i >= start - 1; i--) {
    if (i >= start && r[i] !== 0) continue;
    if (nameEnd === i + 1) return null;
    path[at++] = SLASH;
    for (let j = i + 1; j < nameEnd; j++) {
      if (r[j] === SLASH) return null;
      path[at++] = r[j];
    }
    nameEnd = i;
  }
  return strings.decode(path, 0, at);
}
