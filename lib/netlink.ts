/**
 * The netlink message header (`linux/netlink.h`), shared by every netlink channel proctree
 * reads: the proc connector (`event/wire.ts`) and the audit subsystem (`source/audit/`).
 *
 * ```
 * 0   nlmsghdr  len u32 | type u16 | flags u16 | seq u32 | pid u32           (16 bytes)
 * ```
 *
 * @module
 */

/** `struct nlmsghdr` field offsets and size. */
export const NLMSG = { size: 16, len: 0, type: 4, flags: 6, seq: 8, pid: 12 } as const;
/** Netlink message types (`linux/netlink.h`). */
export const NLMSG_TYPE = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
