/**
 * The proc connector's wire format: `nlmsghdr` + `cn_msg` + `proc_event`, as in
 * `linux/netlink.h`, `linux/connector.h` and `linux/cn_proc.h` (x86_64 and aarch64 agree).
 *
 * This file is the one place for every offset, size and code. The decoder below and the
 * test encoder (`encode.ts`) both read them from here.
 *
 * ```
 * 0   nlmsghdr  len u32 | type u16 | flags u16 | seq u32 | pid u32           (16 bytes)
 * 16  cn_msg    idx u32 | val u32 | seq u32 | ack u32 | len u16 | flags u16  (20 bytes)
 * 36  proc_event what u32 | cpu u32 | timestamp_ns u64 | event_data union   (40 bytes)
 * ```
 *
 * @module
 */

/** `struct nlmsghdr` field offsets and size. */
export const NLMSG = { size: 16, len: 0, type: 4, flags: 6, seq: 8, pid: 12 } as const;
/** Netlink message types (`linux/netlink.h`). */
export const NLMSG_TYPE = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
/** `struct cn_msg` field offsets (relative to its start) and size. */
export const CN_MSG = { size: 20, idx: 0, val: 4, seq: 8, ack: 12, len: 16, flags: 18 } as const;
/** Where `cn_msg` starts in a datagram. */
export const CN_MSG_OFFSET: number = NLMSG.size;
/** The connector id of the proc connector. */
export const CN_IDX_PROC = 1;
/** The connector value of the proc connector. */
export const CN_VAL_PROC = 1;
/** Netlink protocol number of the connector family. */
export const NETLINK_CONNECTOR = 11;

/** `struct proc_event` header offsets (relative to its start) and full size. */
export const PROC_EVENT = { size: 40, what: 0, cpu: 4, timestampNs: 8, data: 16 } as const;
/** Where `proc_event` starts in a datagram. */
export const PROC_EVENT_OFFSET: number = CN_MSG_OFFSET + CN_MSG.size;

/** `enum proc_cn_mcast_op`. */
export const MCAST_OP = { LISTEN: 1, IGNORE: 2 } as const;
/** Size of the 4-byte op message every kernel accepts. */
export const MCAST_OP_SIZE = 4;
/** Size of `struct proc_input` (op + event filter), accepted since Linux 6.6. */
export const PROC_INPUT_SIZE = 8;

/** `enum proc_cn_event` codes. */
export const WHAT = {
  NONE: 0x0,
  FORK: 0x1,
  EXEC: 0x2,
  UID: 0x4,
  GID: 0x40,
  SID: 0x80,
  PTRACE: 0x100,
  COMM: 0x200,
  NONZERO_EXIT: 0x20000000,
  COREDUMP: 0x40000000,
  EXIT: 0x80000000,
} as const;

/** Every event bit the 6.6 filter understands (`PROC_EVENT_ALL`). */
export const WHAT_ALL: number = (WHAT.FORK | WHAT.EXEC | WHAT.UID | WHAT.GID | WHAT.SID |
  WHAT.PTRACE | WHAT.COMM | WHAT.NONZERO_EXIT | WHAT.COREDUMP | WHAT.EXIT) >>> 0;

/** Offsets inside `event_data`, per event. Pid/tgid come first in every member but fork. */
export const DATA = {
  ack: { err: 0, size: 4 },
  fork: { parentPid: 0, parentTgid: 4, childPid: 8, childTgid: 12, size: 16 },
  exec: { pid: 0, tgid: 4, size: 8 },
  id: { pid: 0, tgid: 4, real: 8, effective: 12, size: 16 },
  sid: { pid: 0, tgid: 4, size: 8 },
  ptrace: { pid: 0, tgid: 4, tracerPid: 8, tracerTgid: 12, size: 16 },
  comm: { pid: 0, tgid: 4, comm: 8, commBytes: 16, size: 24 },
  coredump: { pid: 0, tgid: 4, parentPid: 8, parentTgid: 12, size: 16 },
  exit: {
    pid: 0,
    tgid: 4,
    exitCode: 8,
    exitSignal: 12,
    parentPid: 16,
    parentTgid: 20,
    size: 24,
  },
} as const;

/** Event names as printed by `watch`, keyed by `what`. */
export type EventName =
  | "ack"
  | "fork"
  | "exec"
  | "uid"
  | "gid"
  | "sid"
  | "ptrace"
  | "comm"
  | "coredump"
  | "exit";

/** Fields every decoded event has. `pid` is the thread id, `tgid` the process id. */
export interface EventBase {
  /** Per-CPU sequence number from `cn_msg.seq`. */
  seq: number;
  /** `cn_msg.ack`: non-zero only on replies to our own requests. */
  ack: number;
  /** CPU the event was generated on. */
  cpu: number;
  /** Kernel CLOCK_MONOTONIC time of the event, in ns (exact below 2^53 ns ≈ 104 days of uptime). */
  timestampNs: number;
  /** Thread id (for fork: the child's). */
  pid: number;
  /** Process id (thread group id; for fork: the child's). */
  tgid: number;
}

/** Reply to a subscription request: `PROC_EVENT_NONE` carrying an errno (0 = success). */
export interface AckEvent extends EventBase {
  /** The event kind. */
  what: "ack";
  /** errno of the request (0: subscribed). */
  err: number;
}
/** A new task: a process when `pid === tgid`, else a thread. */
export interface ForkEvent extends EventBase {
  /** The event kind. */
  what: "fork";
  /** The parent thread. */
  parentPid: number;
  /** The parent process. */
  parentTgid: number;
}
/** A successful execve. */
export interface ExecEvent extends EventBase {
  /** The event kind. */
  what: "exec";
}
/** A change of real/effective uid (`what: "uid"`) or gid (`what: "gid"`). */
export interface IdEvent extends EventBase {
  /** The event kind. */
  what: "uid" | "gid";
  /** Real id after the change. */
  real: number;
  /** Effective id after the change. */
  effective: number;
}
/** setsid(). */
export interface SidEvent extends EventBase {
  /** The event kind. */
  what: "sid";
}
/** ptrace attach (tracer ids non-zero) or detach (zeros). */
export interface PtraceEvent extends EventBase {
  /** The event kind. */
  what: "ptrace";
  /** Tracer thread (0 on detach). */
  tracerPid: number;
  /** Tracer process (0 on detach). */
  tracerTgid: number;
}
/** A rename (prctl PR_SET_NAME or a write to /proc/…/comm); `comm` holds the raw bytes. */
export interface CommEvent extends EventBase {
  /** The event kind. */
  what: "comm";
  /** The name (at most 15 bytes from the kernel). */
  comm: Uint8Array;
}
/** A core dump started. */
export interface CoredumpEvent extends EventBase {
  /** The event kind. */
  what: "coredump";
  /** The parent thread. */
  parentPid: number;
  /** The parent process. */
  parentTgid: number;
}
/**
 * A task ended; `exitCode` is the raw wait status (see `wait_status.ts`), `exitSignal` the
 * signal sent to the parent (SIGCHLD, or -1 for a thread).
 */
export interface ExitEvent extends EventBase {
  /** The event kind. */
  what: "exit";
  /** Raw wait status (`decodeWaitStatus` reads it). */
  exitCode: number;
  /** Signal sent to the parent: SIGCHLD, or -1 for a thread. */
  exitSignal: number;
  /** The parent thread. */
  parentPid: number;
  /** The parent process. */
  parentTgid: number;
}

/** One decoded proc connector event. */
export type ProcEvent =
  | AckEvent
  | ForkEvent
  | ExecEvent
  | IdEvent
  | SidEvent
  | PtraceEvent
  | CommEvent
  | CoredumpEvent
  | ExitEvent;

/** A well-formed message whose `what` this version does not know. */
export interface UnknownEvent {
  /** The event kind. */
  what: "unknown";
  /** The `what` code. */
  code: number;
  /** Per-CPU sequence number (`cn_msg.seq`). */
  seq: number;
  /** CPU the event came from. */
  cpu: number;
  /** Kernel CLOCK_MONOTONIC time, in ns. */
  timestampNs: number;
}

/** Why a message could not be decoded. Never thrown: returned in place of an event. */
export interface DecodeError {
  /** The event kind. */
  what: "error";
  /** Which check failed. */
  reason:
    | "short_buffer"
    | "bad_nlmsg_len"
    | "nlmsg_error"
    | "unexpected_nlmsg_type"
    | "bad_cn_len"
    | "not_proc_connector"
    | "short_event";
  /** Byte offset of the offending message in the datagram. */
  offset: number;
}

/** What decoding a message yields. */
export type Decoded = ProcEvent | UnknownEvent | DecodeError;

/** Payload bytes each `what` needs beyond the proc_event header. */
function dataSize(what: number): number {
  switch (what) {
    case WHAT.NONE:
      return DATA.ack.size;
    case WHAT.FORK:
      return DATA.fork.size;
    case WHAT.EXEC:
      return DATA.exec.size;
    case WHAT.UID:
    case WHAT.GID:
      return DATA.id.size;
    case WHAT.SID:
      return DATA.sid.size;
    case WHAT.PTRACE:
      return DATA.ptrace.size;
    case WHAT.COMM:
      return DATA.comm.size;
    case WHAT.COREDUMP:
      return DATA.coredump.size;
    case WHAT.EXIT:
      return DATA.exit.size;
    default:
      return 0;
  }
}

// Plain functions, not closures over each message: nothing allocated per event for them.
function u32(view: DataView, at: number): number {
  return view.getUint32(at, true);
}

function i32(view: DataView, at: number): number {
  return view.getInt32(at, true);
}

function err(reason: DecodeError["reason"], offset: number): DecodeError {
  return { what: "error", reason, offset };
}

/**
 * Decodes every netlink message in one datagram of `length` bytes starting at `start` in
 * `view`, appending one result per message to `out`. Never throws on any input.
 */
export function decodeDatagram(
  view: DataView,
  start: number,
  length: number,
  out: Decoded[],
): void {
  const end = Math.min(start + Math.max(0, length | 0), view.byteLength);
  let at = start;
  if (end - at <= 0) {
    out.push(err("short_buffer", 0));
    return;
  }
  while (at < end) {
    const off = at - start;
    if (end - at < NLMSG.size) {
      out.push(err("short_buffer", off));
      return;
    }
    const nlLen = view.getUint32(at + NLMSG.len, true);
    if (nlLen < NLMSG.size || nlLen > end - at) {
      out.push(err("bad_nlmsg_len", off));
      return;
    }
    out.push(decodeMessage(view, at, nlLen, off));
    at += (nlLen + 3) & ~3; // NLMSG_ALIGN
  }
}

function decodeMessage(view: DataView, at: number, nlLen: number, off: number): Decoded {
  const type = view.getUint16(at + NLMSG.type, true);
  if (type === NLMSG_TYPE.ERROR) return err("nlmsg_error", off);
  if (type !== NLMSG_TYPE.DONE) return err("unexpected_nlmsg_type", off);
  if (nlLen < NLMSG.size + CN_MSG.size) return err("bad_cn_len", off);
  const cn = at + CN_MSG_OFFSET;
  const cnLen = view.getUint16(cn + CN_MSG.len, true);
  if (NLMSG.size + CN_MSG.size + cnLen > nlLen) return err("bad_cn_len", off);
  if (
    view.getUint32(cn + CN_MSG.idx, true) !== CN_IDX_PROC ||
    view.getUint32(cn + CN_MSG.val, true) !== CN_VAL_PROC
  ) return err("not_proc_connector", off);
  if (cnLen < PROC_EVENT.data) return err("short_event", off);
  const seq = view.getUint32(cn + CN_MSG.seq, true);
  const ack = view.getUint32(cn + CN_MSG.ack, true);
  const ev = at + PROC_EVENT_OFFSET;
  const what = view.getUint32(ev + PROC_EVENT.what, true);
  const cpu = view.getUint32(ev + PROC_EVENT.cpu, true);
  const lo = view.getUint32(ev + PROC_EVENT.timestampNs, true);
  const hi = view.getUint32(ev + PROC_EVENT.timestampNs + 4, true);
  const timestampNs = hi * 4294967296 + lo;
  const need = dataSize(what);
  if (need === 0) return { what: "unknown", code: what, seq, cpu, timestampNs };
  if (cnLen < PROC_EVENT.data + need) return err("short_event", off);
  const d = ev + PROC_EVENT.data;
  switch (what) {
    case WHAT.NONE:
      return {
        what: "ack",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: 0,
        tgid: 0,
        err: u32(view, d + DATA.ack.err),
      };
    case WHAT.FORK:
      return {
        what: "fork",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: i32(view, d + DATA.fork.childPid),
        tgid: i32(view, d + DATA.fork.childTgid),
        parentPid: i32(view, d + DATA.fork.parentPid),
        parentTgid: i32(view, d + DATA.fork.parentTgid),
      };
    case WHAT.EXEC:
      return {
        what: "exec",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: i32(view, d + DATA.exec.pid),
        tgid: i32(view, d + DATA.exec.tgid),
      };
    case WHAT.UID:
    case WHAT.GID:
      return {
        what: what === WHAT.UID ? "uid" : "gid",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: i32(view, d + DATA.id.pid),
        tgid: i32(view, d + DATA.id.tgid),
        real: u32(view, d + DATA.id.real),
        effective: u32(view, d + DATA.id.effective),
      };
    case WHAT.SID:
      return {
        what: "sid",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: i32(view, d + DATA.sid.pid),
        tgid: i32(view, d + DATA.sid.tgid),
      };
    case WHAT.PTRACE:
      return {
        what: "ptrace",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: i32(view, d + DATA.ptrace.pid),
        tgid: i32(view, d + DATA.ptrace.tgid),
        tracerPid: i32(view, d + DATA.ptrace.tracerPid),
        tracerTgid: i32(view, d + DATA.ptrace.tracerTgid),
      };
    case WHAT.COMM: {
      const from = view.byteOffset + d + DATA.comm.comm;
      const raw = new Uint8Array(view.buffer, from, DATA.comm.commBytes);
      const nul = raw.indexOf(0);
      return {
        what: "comm",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: i32(view, d + DATA.comm.pid),
        tgid: i32(view, d + DATA.comm.tgid),
        comm: raw.slice(0, nul < 0 ? raw.length : nul),
      };
    }
    case WHAT.COREDUMP:
      return {
        what: "coredump",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: i32(view, d + DATA.coredump.pid),
        tgid: i32(view, d + DATA.coredump.tgid),
        parentPid: i32(view, d + DATA.coredump.parentPid),
        parentTgid: i32(view, d + DATA.coredump.parentTgid),
      };
    default:
      return {
        what: "exit",
        seq,
        ack,
        cpu,
        timestampNs,
        pid: i32(view, d + DATA.exit.pid),
        tgid: i32(view, d + DATA.exit.tgid),
        exitCode: u32(view, d + DATA.exit.exitCode),
        exitSignal: i32(view, d + DATA.exit.exitSignal),
        parentPid: i32(view, d + DATA.exit.parentPid),
        parentTgid: i32(view, d + DATA.exit.parentTgid),
      };
  }
}

/** Event names accepted by `--events`, mapped to their kernel filter bits. */
export const EVENT_BITS: Readonly<Record<Exclude<EventName, "ack">, number>> = {
  fork: WHAT.FORK,
  exec: WHAT.EXEC,
  exit: WHAT.EXIT,
  uid: WHAT.UID,
  gid: WHAT.GID,
  sid: WHAT.SID,
  ptrace: WHAT.PTRACE,
  comm: WHAT.COMM,
  coredump: WHAT.COREDUMP,
};

/**
 * The kernel filter (`WHAT` bits) for a set of event names; undefined (everything) without
 * one. `always` adds bits the caller needs whatever is asked for (the tree's fork, exec,
 * exit and comm).
 */
export function eventMask(
  events: Iterable<string> | undefined,
  always = 0,
): number | undefined {
  if (events === undefined) return undefined;
  let mask = always;
  for (const e of events) mask |= EVENT_BITS[e as keyof typeof EVENT_BITS] ?? 0;
  return mask >>> 0;
}

/** What the process tree needs from the kernel, whatever is printed. */
export const TREE_EVENTS: number = (WHAT.FORK | WHAT.EXEC | WHAT.EXIT | WHAT.COMM) >>> 0;

/**
 * Builds the subscription request: a `PROC_CN_MCAST_LISTEN`/`IGNORE` op, and with
 * `eventMask` the 6.6 `struct proc_input` form that carries the event filter.
 */
export function encodeMcastRequest(
  op: number,
  opts: { portId: number; seq: number; ack: number; eventMask?: number },
): Uint8Array {
  const payload = opts.eventMask === undefined ? MCAST_OP_SIZE : PROC_INPUT_SIZE;
  const total = NLMSG.size + CN_MSG.size + payload;
  const buf = new Uint8Array(total);
  const v = new DataView(buf.buffer);
  v.setUint32(NLMSG.len, total, true);
  v.setUint16(NLMSG.type, NLMSG_TYPE.DONE, true);
  v.setUint32(NLMSG.pid, opts.portId, true);
  const cn = CN_MSG_OFFSET;
  v.setUint32(cn + CN_MSG.idx, CN_IDX_PROC, true);
  v.setUint32(cn + CN_MSG.val, CN_VAL_PROC, true);
  v.setUint32(cn + CN_MSG.seq, opts.seq, true);
  v.setUint32(cn + CN_MSG.ack, opts.ack, true);
  v.setUint16(cn + CN_MSG.len, payload, true);
  v.setUint32(PROC_EVENT_OFFSET, op, true);
  if (opts.eventMask !== undefined) v.setUint32(PROC_EVENT_OFFSET + 4, opts.eventMask, true);
  return buf;
}
