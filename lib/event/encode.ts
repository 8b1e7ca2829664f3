/**
 * Encodes proc connector datagrams exactly as the kernel lays them out, from the header
 * layouts in `wire.ts` and the rows of `kinds.ts`. The start-up warm-up
 * (`warm_up.ts`) runs the pipeline on datagrams made here; tests, the fuzzer and the
 * benchmarks build their byte fixtures with it.
 *
 * @module
 */

import {
  CN_IDX_PROC,
  CN_MSG,
  CN_MSG_OFFSET,
  CN_VAL_PROC,
  NLMSG,
  NLMSG_TYPE,
  PROC_EVENT,
  PROC_EVENT_OFFSET,
  type ProcEvent,
} from "./wire.ts";
import { KINDS, type KindSpec } from "./kinds.ts";

/** Size of one kernel proc connector datagram. */
export const DATAGRAM_BYTES: number = PROC_EVENT_OFFSET + PROC_EVENT.size;

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
  const spec: KindSpec = KINDS[ev.what];
  view.setUint32(e + PROC_EVENT.what, spec.code, true);
  view.setUint32(e + PROC_EVENT.cpu, ev.cpu, true);
  view.setBigUint64(e + PROC_EVENT.timestampNs, BigInt(ev.timestampNs), true);
  const d = e + PROC_EVENT.data;
  const values = ev as unknown as Record<string, unknown>;
  for (const [name, field] of Object.entries(spec.fields)) {
    const v = values[name];
    if (field.type === "i32") view.setInt32(d + field.at, v as number, true);
    else if (field.type === "u32") view.setUint32(d + field.at, (v as number) >>> 0, true);
    else {
      // At most size − 1 bytes: the kernel always ends a name with NUL.
      const bytes = (v as Uint8Array).subarray(0, (field.bytes ?? 1) - 1);
      new Uint8Array(view.buffer, view.byteOffset + d + field.at, field.bytes).set(bytes);
    }
  }
  return DATAGRAM_BYTES;
}

/** Encodes `ev` as a fresh datagram. */
export function encodeEvent(ev: ProcEvent): Uint8Array {
  const buf = new Uint8Array(DATAGRAM_BYTES);
  encodeEventInto(new DataView(buf.buffer), 0, ev);
  return buf;
}
