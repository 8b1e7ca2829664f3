/**
 * Encodes proc connector datagrams exactly as the kernel lays them out, from the constants
 * in `wire.ts`. Tests, the fuzzer and the benchmarks build their byte fixtures with it.
 *
 * @module
 */

import {
  CN_IDX_PROC,
  CN_MSG,
  CN_MSG_OFFSET,
  CN_VAL_PROC,
  DATA,
  EVENT_BITS,
  NLMSG,
  NLMSG_TYPE,
  PROC_EVENT,
  PROC_EVENT_OFFSET,
  type ProcEvent,
  WHAT,
} from "./wire.ts";

/** Size of one kernel proc connector datagram. */
export const DATAGRAM_BYTES: number = PROC_EVENT_OFFSET + PROC_EVENT.size;

const WHAT_CODE: Record<ProcEvent["what"], number> = { ack: WHAT.NONE, ...EVENT_BITS };

/** Writes `ev` as one datagram into `view` at `at`; returns the bytes written. */
export function encodeEventInto(view: DataView, at: number, ev: ProcEvent): number {
  new Uint8Array(view.buffer, view.byteOffset + at, DATAGRAM_BYTES).fill(0);
  view.setUint32(at + NLMSG.len, DATAGRAM_BYTES, true);
  view.setUint16(at + NLMSG.type, NLMSG_TYPE.DONE, true);
  view.setUint32(at + NLMSG.seq, ev.seq, true);
  const cn = at + CN_MSG_OFFSET;
  view.setUint32(cn + CN_MSG.idx, CN_IDX_PROC, true);
  view.setUint32(cn + CN_MSG.val, CN_VAL_PROC, true);
  view.setUint32(cn + CN_MSG.seq, ev.seq, true);
  view.setUint32(cn + CN_MSG.ack, ev.ack, true);
  view.setUint16(cn + CN_MSG.len, PROC_EVENT.size, true);
  const e = at + PROC_EVENT_OFFSET;
  view.setUint32(e + PROC_EVENT.what, WHAT_CODE[ev.what], true);
  view.setUint32(e + PROC_EVENT.cpu, ev.cpu, true);
  view.setBigUint64(e + PROC_EVENT.timestampNs, BigInt(ev.timestampNs), true);
  const d = e + PROC_EVENT.data;
  const i32 = (o: number, v: number) => view.setInt32(d + o, v, true);
  const u32 = (o: number, v: number) => view.setUint32(d + o, v >>> 0, true);
  switch (ev.what) {
    case "ack":
      u32(DATA.ack.err, ev.err);
      break;
    case "fork":
      i32(DATA.fork.parentPid, ev.parentPid);
      i32(DATA.fork.parentTgid, ev.parentTgid);
      i32(DATA.fork.childPid, ev.pid);
      i32(DATA.fork.childTgid, ev.tgid);
      break;
    case "uid":
    case "gid":
      i32(DATA.id.pid, ev.pid);
      i32(DATA.id.tgid, ev.tgid);
      u32(DATA.id.real, ev.real);
      u32(DATA.id.effective, ev.effective);
      break;
    case "ptrace":
      i32(DATA.ptrace.pid, ev.pid);
      i32(DATA.ptrace.tgid, ev.tgid);
      i32(DATA.ptrace.tracerPid, ev.tracerPid);
      i32(DATA.ptrace.tracerTgid, ev.tracerTgid);
      break;
    case "comm":
      i32(DATA.comm.pid, ev.pid);
      i32(DATA.comm.tgid, ev.tgid);
      new Uint8Array(view.buffer, view.byteOffset + d + DATA.comm.comm, DATA.comm.commBytes)
        .set(ev.comm.subarray(0, DATA.comm.commBytes - 1));
      break;
    case "coredump":
      i32(DATA.coredump.pid, ev.pid);
      i32(DATA.coredump.tgid, ev.tgid);
      i32(DATA.coredump.parentPid, ev.parentPid);
      i32(DATA.coredump.parentTgid, ev.parentTgid);
      break;
    case "exit":
      i32(DATA.exit.pid, ev.pid);
      i32(DATA.exit.tgid, ev.tgid);
      u32(DATA.exit.exitCode, ev.exitCode);
      i32(DATA.exit.exitSignal, ev.exitSignal);
      i32(DATA.exit.parentPid, ev.parentPid);
      i32(DATA.exit.parentTgid, ev.parentTgid);
      break;
    default: // exec and sid carry pid and tgid only, at the same offsets
      i32(DATA.exec.pid, ev.pid);
      i32(DATA.exec.tgid, ev.tgid);
  }
  return DATAGRAM_BYTES;
}

/** Encodes `ev` as a fresh datagram. */
export function encodeEvent(ev: ProcEvent): Uint8Array {
  const buf = new Uint8Array(DATAGRAM_BYTES);
  encodeEventInto(new DataView(buf.buffer), 0, ev);
  return buf;
}
