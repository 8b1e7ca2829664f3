import { assertEquals } from "@std/assert";
import { LineWriter } from "../lib/line_writer.ts";

/** A sink that takes `room` bytes, then nothing until more room is given. */
class SlowSink {
  room = 0;
  got = "";
  closed = false;
  writeNow(bytes: Uint8Array): number | "closed" {
    if (this.closed) return "closed";
    const n = Math.min(this.room, bytes.length);
    this.got += new TextDecoder().decode(bytes.subarray(0, n));
    this.room -= n;
    return n;
  }
}

Deno.test("LineWriter: a slow reader delays output, never reorders or splits lines", () => {
  const sink = new SlowSink();
  const w = new LineWriter(sink);
  w.push("one");
  w.push("two");
  w.flush();
  assertEquals(sink.got, "");
  sink.room = 5;
  w.flush();
  assertEquals(sink.got, "one\nt");
  sink.room = 100;
  w.push("three");
  w.flush();
  assertEquals(sink.got, "one\ntwo\nthree\n");
});

Deno.test("LineWriter: past the buffer, lines are dropped, counted and reported", () => {
  const sink = new SlowSink();
  const w = new LineWriter(sink, (n) => `LOST ${n}`, 20);
  for (let i = 0; i < 10; i++) {
    w.push(`line-${i}`);
    w.flush();
  }
  assertEquals(w.droppedAtOutput, 7);
  sink.room = 1000;
  w.flush();
  w.flush();
  assertEquals(sink.got, "line-0\nline-1\nline-2\nLOST 7\n");
});

Deno.test("LineWriter: a closed reader closes the writer", () => {
  const sink = new SlowSink();
  const w = new LineWriter(sink);
  sink.closed = true;
  w.push("x");
  w.flush();
  assertEquals(w.closed, true);
});
