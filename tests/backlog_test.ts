import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  backlogPending,
  backlogRead,
  backlogWrite,
  CTL,
  MARK,
  MAX_ENTRY_BYTES,
} from "../lib/event/backlog.ts";

/** A backlog of `capacity` bytes and a recorder of what a read hands on. */
function ring(capacity: number) {
  const ctl = new Int32Array(new SharedArrayBuffer(CTL.words * 4));
  const buf = new SharedArrayBuffer(capacity);
  const bytes = new Uint8Array(buf);
  const view = new DataView(buf);
  const seen: (number[] | string)[] = [];
  const visit = {
    datagram: (v: DataView, o: number, l: number) => seen.push([...new Uint8Array(v.buffer, o, l)]),
    loss: (kind: string, n: number) => seen.push(`${kind}:${n}`),
  };
  const put = (payload: number[]) =>
    backlogWrite(ctl, view, bytes, payload.length, new Uint8Array(payload), 0, payload.length);
  const mark = (word: number, count = 0) => {
    const c = new Uint8Array(4);
    new DataView(c.buffer).setUint32(0, count, true);
    return backlogWrite(ctl, view, bytes, word, c, 0, word === MARK.dropped ? 4 : 0);
  };
  const read = (max = Infinity) => backlogRead(ctl, view, capacity, max, visit);
  return { ctl, put, mark, read, seen };
}

Deno.test("backlog: datagrams come out in order, whole, and free their room", () => {
  const r = ring(64);
  assert(r.put([1, 2, 3]));
  assert(r.put([4, 5, 6, 7, 8]));
  assert(backlogPending(r.ctl));
  assertEquals(r.read(), 2);
  assertEquals(r.seen, [[1, 2, 3], [4, 5, 6, 7, 8]]);
  assert(!backlogPending(r.ctl));
  assertEquals(r.read(), 0);
});

Deno.test("backlog: a read stops at max and the rest stays for the next", () => {
  const r = ring(256);
  for (let i = 0; i < 5; i++) assert(r.put([i]));
  assertEquals(r.read(2), 2);
  assert(backlogPending(r.ctl));
  assertEquals(r.read(), 3);
  assertEquals(r.seen, [[0], [1], [2], [3], [4]]);
});

Deno.test("backlog: a full ring refuses, and an entry that reaches the end wraps to the start", () => {
  const r = ring(48); // entries of 12 bytes (4 + 8): 3 fit with the 4-byte gaps
  const p = (n: number) => [n, n, n, n, n, n, n, n];
  assert(r.put(p(1)));
  assert(r.put(p(2)));
  assert(r.put(p(3)));
  assert(!r.put(p(4)), "full: the gap before the tail stays free");
  assertEquals(r.read(2), 2);
  assert(r.put(p(4)), "wraps to offset 0 once the reader moved on");
  assertEquals(r.read(), 2);
  assertEquals(r.seen, [p(1), p(2), p(3), p(4)]);
  // Many rounds: the ring keeps order across wraps.
  const all: number[][] = [];
  for (let i = 0; i < 100; i++) {
    while (!r.put(p(i % 250))) r.read(1);
    all.push(p(i % 250));
  }
  r.read();
  assertEquals(r.seen.slice(4), all);
});

Deno.test("backlog: loss marks are handed on at their place in the stream", () => {
  const r = ring(128);
  assert(r.put([1]));
  assert(r.mark(MARK.overrun));
  assert(r.mark(MARK.dropped, 7));
  assert(r.put([2]));
  assertEquals(r.read(), 2, "marks are not datagrams");
  assertEquals(r.seen, [[1], "overrun:0", "dropped:7", [2]]);
});

Deno.test("backlog: a corrupt entry word is an error, not a wrong datagram", () => {
  const ctl = new Int32Array(new SharedArrayBuffer(CTL.words * 4));
  const view = new DataView(new SharedArrayBuffer(64));
  view.setUint32(0, MAX_ENTRY_BYTES + 1, true); // a length no datagram has
  Atomics.store(ctl, CTL.head, 8);
  assertThrows(
    () => backlogRead(ctl, view, 64, Infinity, { datagram: () => {}, loss: () => {} }),
    Error,
    "bad entry word",
  );
});
