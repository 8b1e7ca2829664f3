import { assertEquals } from "@std/assert";
import {
  CN_MSG,
  CN_MSG_OFFSET,
  type Decoded,
  decodeDatagram,
  NLMSG,
  PROC_EVENT_OFFSET,
  type ProcEvent,
} from "../lib/event/wire.ts";
import { DATAGRAM_BYTES, encodeEvent } from "../lib/event/encode.ts";

const base = { seq: 7, ack: 0, cpu: 1, timestampNs: 123_456_789_012 };
const EVENTS: ProcEvent[] = [
  { ...base, what: "ack", pid: 0, tgid: 0, err: 0 },
  { ...base, what: "fork", pid: 101, tgid: 101, parentPid: 100, parentTgid: 100 },
  { ...base, what: "exec", pid: 101, tgid: 101 },
  { ...base, what: "uid", pid: 101, tgid: 101, real: 1000, effective: 0 },
  { ...base, what: "gid", pid: 101, tgid: 101, real: 100, effective: 4294967294 },
  { ...base, what: "sid", pid: 101, tgid: 101 },
  { ...base, what: "ptrace", pid: 102, tgid: 101, tracerPid: 5, tracerTgid: 5 },
  { ...base, what: "comm", pid: 101, tgid: 101, comm: new TextEncoder().encode("fifteen-bytes!!") },
  { ...base, what: "coredump", pid: 101, tgid: 101, parentPid: 100, parentTgid: 100 },
  {
    ...base,
    what: "exit",
    pid: 101,
    tgid: 101,
    exitCode: 3 << 8,
    exitSignal: 17,
    parentPid: 1,
    parentTgid: 1,
  },
];

function decode(bytes: Uint8Array, length = bytes.length): Decoded[] {
  const out: Decoded[] = [];
  decodeDatagram(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, length, out);
  return out;
}

for (const ev of EVENTS) {
  Deno.test(`wire: ${ev.what} round-trips through the encoder`, () => {
    assertEquals(decode(encodeEvent(ev)), [ev]);
  });
}

Deno.test("wire: a datagram is 76 bytes, proc_event at 36", () => {
  assertEquals(DATAGRAM_BYTES, 76);
  assertEquals(PROC_EVENT_OFFSET, 36);
});

Deno.test("wire: thread exit signal -1 and large timestamps survive", () => {
  const ev: ProcEvent = {
    ...base,
    timestampNs: 2 ** 50 + 3,
    what: "exit",
    pid: 7,
    tgid: 6,
    exitCode: 9,
    exitSignal: -1,
    parentPid: 0,
    parentTgid: 0,
  };
  assertEquals(decode(encodeEvent(ev)), [ev]);
});

Deno.test("wire: several messages in one datagram decode in order", () => {
  const a = encodeEvent(EVENTS[1]);
  const b = encodeEvent(EVENTS[2]);
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  assertEquals(decode(both), [EVENTS[1], EVENTS[2]]);
});

Deno.test("wire: malformed input yields typed errors, never throws", () => {
  const good = encodeEvent(EVENTS[1]);
  const v = (b: Uint8Array) => new DataView(b.buffer);
  assertEquals(decode(new Uint8Array(0)), [{ what: "error", reason: "short_buffer", offset: 0 }]);
  assertEquals(decode(good.slice(0, 10)), [{ what: "error", reason: "short_buffer", offset: 0 }]);
  // nlmsg_len larger than the buffer
  const big = good.slice();
  v(big).setUint32(NLMSG.len, 200, true);
  assertEquals(decode(big), [{ what: "error", reason: "bad_nlmsg_len", offset: 0 }]);
  // nlmsg_len smaller than a header
  const tiny = good.slice();
  v(tiny).setUint32(NLMSG.len, 8, true);
  assertEquals(decode(tiny), [{ what: "error", reason: "bad_nlmsg_len", offset: 0 }]);
  // cn_msg.len beyond the message
  const cn = good.slice();
  v(cn).setUint16(CN_MSG_OFFSET + CN_MSG.len, 500, true);
  assertEquals(decode(cn), [{ what: "error", reason: "bad_cn_len", offset: 0 }]);
  // cn_msg.len too small for a fork
  const short = good.slice();
  v(short).setUint16(CN_MSG_OFFSET + CN_MSG.len, 20, true);
  assertEquals(decode(short), [{ what: "error", reason: "short_event", offset: 0 }]);
  // another connector
  const other = good.slice();
  v(other).setUint32(CN_MSG_OFFSET + CN_MSG.idx, 7, true);
  assertEquals(decode(other), [{ what: "error", reason: "not_proc_connector", offset: 0 }]);
  // NLMSG_ERROR and an odd type
  const nlerr = good.slice();
  v(nlerr).setUint16(NLMSG.type, 2, true);
  assertEquals(decode(nlerr), [{ what: "error", reason: "nlmsg_error", offset: 0 }]);
  const odd = good.slice();
  v(odd).setUint16(NLMSG.type, 99, true);
  assertEquals(decode(odd), [{ what: "error", reason: "unexpected_nlmsg_type", offset: 0 }]);
  // truncated: the kernel datagram cut short by the reader
  assertEquals(decode(good, 50), [{ what: "error", reason: "bad_nlmsg_len", offset: 0 }]);
});

Deno.test("wire: an unknown what is reported, not misread", () => {
  const b = encodeEvent(EVENTS[1]);
  new DataView(b.buffer).setUint32(PROC_EVENT_OFFSET, 0x8, true);
  assertEquals(decode(b), [{
    what: "unknown",
    code: 8,
    seq: 7,
    cpu: 1,
    timestampNs: base.timestampNs,
  }]);
});

Deno.test("wire: a bad second message keeps the first", () => {
  const a = encodeEvent(EVENTS[2]);
  const both = new Uint8Array(a.length + 20);
  both.set(a);
  const out = decode(both);
  assertEquals(out[0], EVENTS[2]);
  assertEquals(out[1], { what: "error", reason: "bad_nlmsg_len", offset: 76 });
});

Deno.test("wire: event masks for the kernel filter", async () => {
  const { eventMask, TREE_EVENTS, WHAT } = await import("../lib/event/wire.ts");
  assertEquals(eventMask(undefined), undefined);
  assertEquals(eventMask(["exec"]), WHAT.EXEC);
  assertEquals(
    eventMask(["uid"], TREE_EVENTS),
    (WHAT.UID | WHAT.FORK | WHAT.EXEC | WHAT.EXIT | WHAT.COMM) >>> 0,
  );
  assertEquals(eventMask(["exit"]), WHAT.EXIT);
});
