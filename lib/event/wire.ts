/**
 * The proc connector's wire format: `nlmsghdr` + `cn_msg` + `proc_event`, as in
 * `linux/netlink.h`, `linux/connector.h` and `linux/cn_proc.h` (x86_64 and aarch64 agree).
 *
 * This file holds the header layouts (the netlink header itself is `../netlink.ts`, shared
 * with audit) and the decoder; the per-kind payloads (codes, sizes, field offsets) are rows
 * of `kinds.ts`. The decoder and the encoder (`encode.ts`)
 * both read every offset from these two files.
 *
 * ```
 * 0   nlmsghdr  len u32 | type u16 | flags u16 | seq u32 | pid u32           (16 bytes)
 * 16  cn_msg    idx u32 | val u32 | seq u32 | ack u32 | len u16 | flags u16  (20 bytes)
 * 36  proc_event what u32 | cpu u32 | timestamp_ns u64 | event_data union   (40 bytes)
 * ```
 *
 * @module
 */

import { NLMSG, NLMSG_TYPE } from "../netlink.ts";

export { NLMSG, NLMSG_TYPE };
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

import { type EventName, type EventOf, type Field, KINDS, type KindSpec } from "./kinds.ts";

export {
  EVENT_BITS,
  type EventBase,
  type EventKind,
  eventMask,
  type EventName,
  type EventOf,
  TREE_EVENTS,
  WHAT,
  WHAT_ALL,
} from "./kinds.ts";

/** Reply to a subscription request: `PROC_EVENT_NONE` carrying an errno (0 = success). */
export type AckEvent = EventOf<"ack">;
/** A new task: a process when `pid === tgid`, else a thread. */
export type ForkEvent = EventOf<"fork">;
/** A successful execve. */
export type ExecEvent = EventOf<"exec">;
/** A change of real/effective uid (`what: "uid"`) or gid (`what: "gid"`). */
export type IdEvent = EventOf<"uid" | "gid">;
/** setsid(). */
export type SidEvent = EventOf<"sid">;
/** ptrace attach (tracer ids non-zero) or detach (zeros). */
export type PtraceEvent = EventOf<"ptrace">;
/** A rename (prctl PR_SET_NAME or a write to /proc/…/comm); `comm` holds the raw bytes. */
export type CommEvent = EventOf<"comm">;
/** A core dump started. */
export type CoredumpEvent = EventOf<"coredump">;
/**
 * A task ended; `exitCode` is the raw wait status (see `wait_status.ts`), `exitSignal` the
 * signal sent to the parent (SIGCHLD, or -1 for a thread).
 */
export type ExitEvent = EventOf<"exit">;

/** One decoded proc connector event. */
export type ProcEvent = EventOf<EventName>;

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

/**
 * A decoder for one kind: `(view, d, seq, ack, cpu, timestampNs) => event`, where `d` is
 * where `event_data` starts.
 */
type RowDecoder = (
  view: DataView,
  d: number,
  seq: number,
  ack: number,
  cpu: number,
  timestampNs: number,
  commBytes: (view: DataView, at: number, size: number) => Uint8Array,
) => ProcEvent;

/**
 * Compiles each row of the table into a decoder that builds its event as one object
 * literal. A generic loop storing fields by computed name made every event a megamorphic
 * keyed store and decoding twice as slow; generated from the same row, the decoder stays
 * as fast as a hand-written one and cannot disagree with the encoder.
 */
function compileRow(what: EventName, spec: KindSpec): RowDecoder {
  const read = (f: Field<unknown>) =>
    f.type === "i32"
      ? `view.getInt32(d + ${f.at}, true)`
      : f.type === "u32"
      ? `view.getUint32(d + ${f.at}, true)`
      : `commBytes(view, d + ${f.at}, ${f.bytes})`;
  const fields = Object.entries(spec.fields) as [string, Field<unknown>][];
  const props = [
    `what: ${JSON.stringify(what)}`,
    "seq",
    "ack",
    "cpu",
    "timestampNs",
    `pid: ${spec.fields.pid ? read(spec.fields.pid) : "0"}`,
    `tgid: ${spec.fields.tgid ? read(spec.fields.tgid) : "0"}`,
    ...fields.filter(([n]) => n !== "pid" && n !== "tgid").map(([n, f]) => `${n}: ${read(f)}`),
  ];
  return new Function(
    "view",
    "d",
    "seq",
    "ack",
    "cpu",
    "timestampNs",
    "commBytes",
    `return { ${props.join(", ")} };`,
  ) as RowDecoder;
}

interface Row {
  size: number;
  decode: RowDecoder;
}

const ROWS = new Map<number, Row>();
for (const [what, spec] of Object.entries(KINDS) as [EventName, KindSpec][]) {
  ROWS.set(spec.code, { size: spec.size, decode: compileRow(what, spec) });
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
  const code = view.getUint32(ev + PROC_EVENT.what, true);
  const cpu = view.getUint32(ev + PROC_EVENT.cpu, true);
  const lo = view.getUint32(ev + PROC_EVENT.timestampNs, true);
  const hi = view.getUint32(ev + PROC_EVENT.timestampNs + 4, true);
  const timestampNs = hi * 4294967296 + lo;
  const row = ROWS.get(code);
  if (!row) return { what: "unknown", code, seq, cpu, timestampNs };
  if (cnLen < PROC_EVENT.data + row.size) return err("short_event", off);
  return row.decode(view, ev + PROC_EVENT.data, seq, ack, cpu, timestampNs, commBytes);
}

/** A NUL-padded name field: the bytes before the first NUL, copied out of the buffer. */
function commBytes(view: DataView, at: number, size: number): Uint8Array {
  const raw = new Uint8Array(view.buffer, view.byteOffset + at, size);
  const nul = raw.indexOf(0);
  return raw.slice(0, nul < 0 ? raw.length : nul);
}

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
