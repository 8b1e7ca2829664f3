/**
 * The libc symbol table: the only `Deno.dlopen` in proctree (the connector's reader thread
 * opens part of this same table in its own thread: `ffi/source/connector_reader.ts`).
 *
 * Every call here is synchronous except `pollAsync`, which parks on a worker thread so that
 * the event loop stays free while the socket is idle. errno is thread-local, so it is read
 * right after a synchronous call on the main thread and never after an await.
 *
 * @module
 */

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  pollAsync: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  openMode: { name: "open", parameters: ["buffer", "i32", "u32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  close_range: { parameters: ["u32", "u32", "i32"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  fdopendir: { parameters: ["i32"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  fanotify_init: { parameters: ["u32", "u32"], result: "i32" },
  fanotify_mark: { parameters: ["i32", "u32", "u64", "i32", "buffer"], result: "i32" },
  realpath: { parameters: ["buffer", "buffer"], result: "pointer" },
  name_to_handle_at: {
    parameters: ["i32", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  open_by_handle_at: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  statfs: { parameters: ["buffer", "buffer"], result: "i32" },
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  pthread_sigmask: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  // bpf(2) has no libc wrapper: syscall(SYS_bpf, cmd, attr, size).
  syscall: { parameters: ["i64", "i64", "buffer", "u64"], result: "i64" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
} as const;

/**
 * Part of the table, for a thread that opens libc itself (the connector's reader thread:
 * a worker has its own symbol bindings).
 */
export function libcSymbols<K extends keyof typeof SYMBOLS>(
  names: readonly K[],
): Pick<typeof SYMBOLS, K> {
  return Object.fromEntries(names.map((n) => [n, SYMBOLS[n]])) as Pick<typeof SYMBOLS, K>;
}

/** The loaded libc. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
let errnoView: Deno.UnsafePointerView | undefined;

/** Loads libc once; throws a one-line error when FFI is unavailable. */
export function libc(): Libc {
  if (!lib) {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
    const p = lib.symbols.__errno_location();
    if (p === null) throw new Error("libc: __errno_location returned NULL");
    errnoView = new Deno.UnsafePointerView(p);
  }
  return lib.symbols;
}

/** errno of the main thread, as left by the last synchronous libc call. */
export function errno(): number {
  libc();
  return errnoView!.getInt32(0);
}

import { errnoName } from "../lib/errno.ts";
import { u64 } from "../lib/bpf/fields.ts";
export { Errno, errnoName } from "../lib/errno.ts";

/** `struct statfs` on 64-bit Linux: `f_type` (the filesystem's magic) and `f_fsid` (8 bytes). */
export const STATFS = { size: 120, type: 0, fsid: 56 } as const;

/**
 * Kernel interfaces by their `statfs` magic (`linux/magic.h`): files there are the kernel's
 * switches and reports, never a log.
 */
export const KERNEL_FS_MAGIC: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x63677270, "cgroup2"],
  [0x27e0eb, "cgroup"],
  [0xcafe4a11, "bpf"],
  [0x62656570, "configfs"],
  [0x6165676c, "pstore"],
  [0xde5e81e4, "efivarfs"],
]);

/** `struct statx`: the fields that tell one file from another (`linux/stat.h`). */
export const STATX = {
  size: 256,
  ino: 32,
  devMajor: 136,
  devMinor: 140,
  /** `stx_mode` (u16): the file type and permissions. */
  mode: 28,
  /** Ask for the file type (`STATX_TYPE`). */
  maskType: 0x1,
  /** Ask for the inode number (`STATX_INO`). */
  maskIno: 0x100,
  /** `AT_EMPTY_PATH`: the descriptor itself. */
  emptyPath: 0x1000,
} as const;

/** `S_IFMT` and `S_IFREG` (`linux/stat.h`): the type bits of a mode, and a regular file's. */
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;

/** `AT_FDCWD`: a path relative to the working directory, for the `*at` calls. */
export const AT_FDCWD = -100;

/** What the errnos a user meets most often mean, in words (as `strerror` says them). */
const ERRNO_WORDS: Record<string, string> = {
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  EIO: "input/output error",
  EACCES: "permission denied",
  EEXIST: "file exists",
  EISDIR: "is a directory",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  EDQUOT: "disk quota exceeded",
  ELOOP: "too many levels of symbolic links",
  EXDEV: "not on the same file system",
  EMFILE: "too many open files",
  ENOMEM: "out of memory",
};

/** The errno in words with its name, e.g. `no such file or directory (ENOENT)`. */
export function errnoText(code: number): string {
  const name = errnoName(code);
  const words = ERRNO_WORDS[name];
  return words ? `${words} (${name})` : name;
}

/** A failed libc call, carrying the errno name in `code` and in its message. */
export class LibcError extends Error {
  /** The errno name, e.g. `EPERM`. */
  readonly code: string;
  /** The errno number. */
  readonly errno: number;
  constructor(call: string, errnoValue: number) {
    super(`${call}: ${errnoName(errnoValue)}`);
    this.name = "LibcError";
    this.errno = errnoValue;
    this.code = errnoName(errnoValue);
  }
}

/** arm64 moves two `open(2)` flags (`arch/arm64/include/uapi/asm/fcntl.h`). */
const ARM64 = Deno.build.arch === "aarch64";

/** The `open(2)` flags proctree uses. */
export type OpenFlag =
  | "RDONLY"
  | "WRONLY"
  | "RDWR"
  | "CREAT"
  | "EXCL"
  | "TRUNC"
  | "APPEND"
  | "NONBLOCK"
  | "LARGEFILE"
  | "NOFOLLOW"
  | "NOATIME"
  | "CLOEXEC"
  | "DIRECTORY"
  | "PATH";

/** `open(2)` flags, for the architecture proctree runs on. */
export const O: Readonly<Record<OpenFlag, number>> = {
  RDONLY: 0o0,
  WRONLY: 0o1,
  RDWR: 0o2,
  CREAT: 0o100,
  EXCL: 0o200,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  LARGEFILE: ARM64 ? 0o400000 : 0o100000,
  NOFOLLOW: ARM64 ? 0o100000 : 0o400000,
  NOATIME: 0o1000000,
  CLOEXEC: 0o2000000,
  DIRECTORY: ARM64 ? 0o40000 : 0o200000,
  PATH: 0o10000000,
};

/** Socket constants of the netlink sockets proctree opens (the connector's, audit's). */
export const SOCK = {
  AF_NETLINK: 16,
  DGRAM: 2,
  RAW: 3,
  NONBLOCK: 0x800,
  CLOEXEC: 0x80000,
  SOL_SOCKET: 1,
  SO_RCVBUF: 8,
  SO_RCVBUFFORCE: 33,
  SO_MEMINFO: 55,
  MSG_TRUNC: 0x20,
  MSG_DONTWAIT: 0x40,
} as const;

/** `struct sockaddr_nl { u16 family; u16 pad; u32 nl_pid; u32 nl_groups; }`. */
export const SOCKADDR_NL = { size: 12, family: 0, pid: 4, groups: 8 } as const;

/** A netlink address for `bind(2)`: the kernel's family and the multicast `groups` bits. */
export function netlinkAddress(groups: number): Uint8Array {
  const addr = new Uint8Array(SOCKADDR_NL.size);
  const v = new DataView(addr.buffer);
  v.setUint16(SOCKADDR_NL.family, SOCK.AF_NETLINK, true);
  v.setUint32(SOCKADDR_NL.groups, groups, true);
  return addr;
}

/**
 * Asks for a receive buffer of `bytes` and returns what the kernel granted (0: unknown).
 * `SO_RCVBUFFORCE` ignores `rmem_max` but needs `CAP_NET_ADMIN`; `SO_RCVBUF` is capped by it.
 */
export function setRcvbuf(fd: number, bytes: number): number {
  const c = libc();
  const v = new Int32Array([Math.min(bytes, 0x3fffffff)]);
  const asBytes = new Uint8Array(v.buffer);
  if (c.setsockopt(fd, SOCK.SOL_SOCKET, SOCK.SO_RCVBUFFORCE, asBytes, 4) !== 0) {
    c.setsockopt(fd, SOCK.SOL_SOCKET, SOCK.SO_RCVBUF, asBytes, 4);
  }
  const out = new Int32Array(1);
  const len = new Uint32Array([4]);
  const r = c.getsockopt(
    fd,
    SOCK.SOL_SOCKET,
    SOCK.SO_RCVBUF,
    new Uint8Array(out.buffer),
    new Uint8Array(len.buffer),
  );
  return r === 0 ? out[0] : 0;
}

// `getsockopt(SO_MEMINFO)` fills `u32 [SK_MEMINFO_VARS]`; index 0 is `SK_MEMINFO_RMEM_ALLOC`.
const MEMINFO_VARS = 9;
const SK_MEMINFO_RMEM_ALLOC = 0;
const meminfo = new Uint32Array(MEMINFO_VARS);
const meminfoBytes = new Uint8Array(meminfo.buffer);
const meminfoLen = new Uint32Array(1);
const meminfoLenBytes = new Uint8Array(meminfoLen.buffer);

/**
 * Kernel memory the socket's receive queue holds now, in bytes (the `skb`s charged against
 * its receive buffer, as `SO_RCVBUF` reports it); null when the kernel does not say
 * (`SO_MEMINFO` is Linux ≥ 4.12).
 */
export function queuedBytes(fd: number): number | null {
  meminfoLen[0] = meminfo.byteLength;
  const r = libc().getsockopt(
    fd,
    SOCK.SOL_SOCKET,
    SOCK.SO_MEMINFO,
    meminfoBytes,
    meminfoLenBytes,
  );
  return r === 0 ? meminfo[SK_MEMINFO_RMEM_ALLOC] : null;
}

/** `struct pollfd` layout and the `poll(2)` event bits proctree uses. */
export const POLLFD = { size: 8, fd: 0, events: 4, revents: 6 } as const;
/** `eventfd(2)` flags. */
export const EFD = { CLOEXEC: 0x80000, NONBLOCK: 0x800 } as const;

/** `poll(2)` event bits. */
export const POLL = { IN: 0x1, PRI: 0x2, OUT: 0x4, ERR: 0x8, HUP: 0x10 } as const;

/** Clock ids for {@linkcode clockNs}. */
export const Clock = { REALTIME: 0, MONOTONIC: 1, BOOTTIME: 7 } as const;

// Read with `u64`: a BigInt64Array's element is a new BigInt on every read, and a clock is
// read twice for each exec of a storm.
const timespecBytes = new Uint8Array(16);
const timespec = new DataView(timespecBytes.buffer);

/** Reads a clock as nanoseconds (a number: exact to well below a microsecond for decades). */
export function clockNs(clock: number): number {
  if (libc().clock_gettime(clock, timespecBytes) !== 0) {
    throw new LibcError("clock_gettime", errno());
  }
  return u64(timespec, 0) * 1e9 + u64(timespec, 8); // tv_sec, tv_nsec
}
