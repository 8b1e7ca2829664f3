/**
 * errno values by name, and their names: one table for the FFI edge (libc's errno) and for
 * results the kernel reports in records (a syscall's return value).
 *
 * @module
 */

/** errno values proctree can meet (Linux asm-generic numbering: x86_64 and aarch64). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EEXIST: 17,
  EISDIR: 21,
  EINVAL: 22,
  EMFILE: 24,
  ENOSPC: 28,
  EROFS: 30,
  ENAMETOOLONG: 36,
  EPIPE: 32,
  EDQUOT: 122,
  ELOOP: 40,
  EPROTONOSUPPORT: 93,
  EAFNOSUPPORT: 97,
  ENOBUFS: 105,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
  ECONNREFUSED: 111,
  E2BIG: 7,
  ENOTSOCK: 88,
  EPROTOTYPE: 91,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  EISCONN: 106,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
} as const;

const ERRNO_NAMES = new Map<number, string>(Object.entries(Errno).map(([name, n]) => [n, name]));

/** The symbolic name of an errno value, e.g. `ENOBUFS`, or `errno N`. */
export function errnoName(code: number): string {
  return ERRNO_NAMES.get(code) ?? `errno ${code}`;
}
