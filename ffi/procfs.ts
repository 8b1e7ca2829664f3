/**
 * Reads `/proc` through libc: Deno's file API refuses `/proc` without `--allow-all`, and
 * open/read/close into one reused buffer is also several times cheaper per exec than
 * `Deno.readFileSync` (no path or result objects beyond the parsed values).
 *
 * @module
 */

import { AT_FDCWD, Errno, errno, libc, O, S_IFMT, S_IFREG, STATX } from "./libc.ts";
import { bytesOf, decodeBytes } from "../lib/text.ts";
import { type EcsHost, parseOsRelease } from "../lib/sink/ecs.ts";
import {
  fileIdText,
  NOT_HERE,
  parseCmdline,
  parseLoginUid,
  parseStat,
  parseStatus,
  type ProcReader,
} from "../lib/tree/proc_parse.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

let buf = new Uint8Array(64 * 1024); // BUF_BYTES
const pathBuf = new Uint8Array(4096);

/** `path` as a NUL-terminated C string, in a buffer reused by the next call: pass it on at once. */
export function cPath(path: string): Uint8Array {
  const r = encoder.encodeInto(path, pathBuf);
  if (r.written >= pathBuf.length) return encoder.encode(path + "\0");
  pathBuf[r.written] = 0;
  return pathBuf;
}

/**
 * A path as the exact bytes it stands for (`text.ts`: escaped bytes back to themselves),
 * NUL-terminated: for paths taken from the kernel, which need not be UTF-8.
 */
export function cBytes(path: string): Uint8Array {
  const b = bytesOf(path);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

const realBuf = new Uint8Array(4096);

/** `path` with every symlink resolved (`realpath(3)`), exact bytes; null when it fails. */
export function realPath(path: string): string | null {
  const p = libc().realpath(cBytes(path), realBuf);
  if (p === null) return null;
  const end = realBuf.indexOf(0);
  return decodeBytes(realBuf.subarray(0, end < 0 ? realBuf.length : end));
}

const statxBuf = new Uint8Array(STATX.size);
const statxView = new DataView(statxBuf.buffer);

/** Whether `fd` is open on a regular file (not a pipe, socket, terminal or device). */
export function isRegularFile(fd: number): boolean {
  if (libc().statx(fd, cBytes(""), STATX.emptyPath, STATX.maskType, statxBuf) !== 0) return false;
  return (statxView.getUint16(STATX.mode, true) & S_IFMT) === S_IFREG;
}

/**
 * Device and inode of the file `fd` has open (`path` ""), or of what `path` names (links
 * followed); null when it cannot be asked.
 */
export function fileId(fd: number, path: string): string | null {
  const at = path === "" ? fd : AT_FDCWD;
  const flags = path === "" ? STATX.emptyPath : 0;
  if (libc().statx(at, cBytes(path), flags, STATX.maskIno, statxBuf) !== 0) return null;
  return fileIdText(
    statxView.getUint32(STATX.devMajor, true),
    statxView.getUint32(STATX.devMinor, true),
    statxView.getBigUint64(STATX.ino, true),
  );
}

/**
 * Whether `path`, resolved in proctree's own mount namespace, is the file `id` names. Not
 * knowing (`id` null: gone) is not a mismatch: the path was read from the kernel's own link.
 */
export function sameFile(id: string | null, path: string): boolean {
  if (id === null) return true;
  // Every exec asks about the same few paths: one statx, not two, when a path still names
  // the file it named last time (another file, or a path not asked yet, is asked again).
  if (pathIds.get(path) === id) return true;
  if (pathIds.size >= MAX_PATH_IDS) pathIds.clear();
  const now = fileId(-1, path);
  if (now !== null) pathIds.set(path, now);
  return now === id;
}

/**
 * The canonical path of `path` when it names the file `id` (device and inode, as
 * {@linkcode fileId} spells them) from proctree's mount namespace; else null.
 */
export function exePathOf(path: string, id: string): string | null {
  const real = realPath(path);
  return real !== null && fileId(-1, real) === id ? real : null;
}

/** Paths and the file each reached when last asked (see `sameFile`). */
const pathIds = new Map<string, string>();
const MAX_PATH_IDS = 4096;

/** The initial size of the shared read buffer, restored after a large file was read. */
const BUF_BYTES = 64 * 1024;

/**
 * A whole file's bytes (a copy), or null when it cannot be read: for the few large files
 * proctree reads once (the kernel's BTF), not for per-event reads.
 */
export function readFileBytes(path: string): Uint8Array | null {
  const n = readInto(path, true);
  const out = n < 0 ? null : buf.slice(0, n);
  if (buf.length > 16 * BUF_BYTES) buf = new Uint8Array(BUF_BYTES); // not held for life
  return out;
}

/**
 * Reads a whole file into the shared buffer; returns its length, or -1. `untilEof`: for a
 * file that may return less than asked before its end (sysfs binary files, regular files);
 * a `/proc` file fills the buffer in one read when it fits.
 */
function readInto(path: string, untilEof = false): number {
  const c = libc();
  const fd = c.open(cPath(path), O.RDONLY | O.CLOEXEC);
  if (fd < 0) return -1;
  let len = 0;
  try {
    for (;;) {
      if (len === buf.length) {
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf);
        buf = bigger;
      }
      const n = Number(c.read(fd, buf.subarray(len), BigInt(buf.length - len)));
      if (n < 0) return len > 0 ? len : -1;
      if (n === 0) return len;
      len += n;
      // /proc files fill the buffer in one read when they fit: skip the read that says EOF.
      if (len < buf.length && !untilEof) return len;
    }
  } finally {
    c.close(fd);
  }
}

/** A file's text (Latin-1: /proc text is ASCII), or null. */
export function readFileText(path: string): string | null {
  const n = readInto(path);
  return n < 0 ? null : latin1.decode(buf.subarray(0, n));
}

const linkBuf = new Uint8Array(4096);

/** The target of a symlink, or null. Bytes that are not UTF-8 are kept (see `text.ts`). */
export function readLink(path: string): string | null {
  const n = Number(libc().readlink(cPath(path), linkBuf, BigInt(linkBuf.length)));
  if (n < 0) return null;
  return decodeBytes(linkBuf.subarray(0, n));
}

/** Writes `text` to an existing file of the kernel's (a sysctl); 0, or the errno. */
export function writeKernelFile(path: string, text: string): number {
  const c = libc();
  const fd = c.open(cPath(path), O.WRONLY | O.CLOEXEC);
  if (fd < 0) return errno();
  const bytes = new TextEncoder().encode(text);
  const n = Number(c.write(fd, bytes, BigInt(bytes.length)));
  const e = n === bytes.length ? 0 : n < 0 ? errno() : Errno.EIO;
  c.close(fd);
  return e;
}

const DIRENT_NAME = 19; // struct dirent64: d_ino 8, d_off 8, d_reclen 2, d_type 1, d_name

/** The names in a directory (without `.` and `..`); empty when it cannot be read. */
export function listDir(path: string): string[] {
  const c = libc();
  const dir = c.opendir(cPath(path));
  if (dir === null) return [];
  const out: string[] = [];
  try {
    for (let e = c.readdir(dir); e !== null; e = c.readdir(dir)) {
      const name = new Deno.UnsafePointerView(e).getCString(DIRENT_NAME);
      if (name !== "." && name !== "..") out.push(name);
    }
  } finally {
    c.closedir(dir);
  }
  return out;
}

/** The host's name (the UTS namespace's, as `hostname` prints it); "" when unreadable. */
export function hostName(): string {
  return readFileText("/proc/sys/kernel/hostname")?.trim() ?? "";
}

/** The machine as ECS's `host.*` describes it, read once (see `lib/sink/ecs.ts`). */
export function hostFacts(): EcsHost {
  const osRelease = readFileText("/etc/os-release") ?? readFileText("/usr/lib/os-release");
  const arch: Record<string, string> = { x86_64: "x86_64", aarch64: "aarch64" };
  return {
    hostname: hostName(),
    id: readFileText("/etc/machine-id")?.trim() || null,
    architecture: arch[Deno.build.arch] ?? null,
    kernel: readFileText("/proc/sys/kernel/osrelease")?.trim() || null,
    os: osRelease === null ? null : parseOsRelease(osRelease),
  };
}

/** Reads `/proc/<pid>/…` through libc. */
export const procfs: ProcReader = {
  stat(pid) {
    const n = readInto(`/proc/${pid}/stat`);
    return n < 0 ? null : parseStat(buf.subarray(0, n));
  },
  status(pid) {
    const n = readInto(`/proc/${pid}/status`);
    return n < 0 ? null : parseStatus(buf.subarray(0, n));
  },
  cmdline(pid) {
    const n = readInto(`/proc/${pid}/cmdline`);
    if (n < 0) return null;
    const argv = parseCmdline(buf.subarray(0, n));
    // A read that filled whole pages and then saw end-of-file may have met the process's
    // exit, not the end of its arguments: kept only if the process is still there.
    if (n > 0 && n % 4096 === 0 && readInto(`/proc/${pid}/stat`) < 0) return null;
    return argv;
  },
  exe(pid) {
    const path = readLink(`/proc/${pid}/exe`);
    // The link names the file as its own mount namespace reaches it: a path that reaches
    // another file from here is not this program's name (a private bind mount over it).
    if (path === null) return null;
    return sameFile(fileId(-1, `/proc/${pid}/exe`), path) ? path : NOT_HERE;
  },
  cwd(pid) {
    return readLink(`/proc/${pid}/cwd`);
  },
  loginUid(pid) {
    const text = readFileText(`/proc/${pid}/loginuid`);
    return text === null ? undefined : parseLoginUid(text);
  },
  cgroup(pid) {
    return readFileText(`/proc/${pid}/cgroup`);
  },
  tasks(pid) {
    return listDir(`/proc/${pid}/task`).map(Number).filter(Number.isInteger);
  },
  pids() {
    return listDir("/proc").filter((n) => n.charCodeAt(0) >= 0x30 && n.charCodeAt(0) <= 0x39).map(
      Number,
    );
  },
};
