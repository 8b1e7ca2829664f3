import { assert, assertEquals } from "@std/assert";
import { drainNote, LineWriter, WRITE_BUFFER_BYTES } from "../lib/sink/line_writer.ts";
import { FdWriter } from "../ffi/sink/fd_writer.ts";
import { libc } from "../ffi/libc.ts";

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

Deno.test("LineWriter: lines across the reused buffer's end, and one longer than it, in order", () => {
  const sink = new SlowSink();
  const w = new LineWriter(sink);
  const long = "é".repeat(WRITE_BUFFER_BYTES); // two bytes each: twice the buffer
  const lines = Array.from(
    { length: 3000 },
    (_, i) => i === 1500 ? long : `line ${i} ${"x".repeat(i % 90)}`,
  );
  sink.room = 100_000; // the reader takes part, then nothing
  for (const l of lines) w.push(l);
  w.flush();
  sink.room = Infinity;
  w.flush();
  assertEquals(sink.got, lines.join("\n") + "\n");
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

Deno.test("LineWriter: a reader that stops inside a line gets the rest of it, and what is left is counted", () => {
  const sink = new SlowSink();
  const w = new LineWriter(sink);
  for (const l of ["aaaa", "bbbb", "cccc"]) w.push(l);
  sink.room = 7; // "aaaa\nbb": stops inside the second line
  let waits = 0;
  const r = w.drain(5, () => {
    // The reader makes room for just the rest of the line once proctree gives up on the others.
    if (++waits === 3) sink.room = 3;
    return true;
  });
  assertEquals(sink.got, "aaaa\nbbbb\n");
  assertEquals(r, { unwrittenLines: 1, torn: false });
  assertEquals(drainNote(r, 2000), "proctree: 1 line not written: the output took nothing for 2 s");
});

Deno.test("LineWriter: a reader that never takes the rest of its line is said to hold a cut line", () => {
  const sink = new SlowSink();
  const w = new LineWriter(sink);
  for (const l of ["aaaa", "bbbb", "cccc"]) w.push(l);
  sink.room = 7;
  const r = w.drain(5, () => true);
  assertEquals(r, { unwrittenLines: 2, torn: true });
  assertEquals(drainNote({ unwrittenLines: 0, torn: false }, 2000), null);
});

Deno.test("FdWriter: writes to a real pipe end at line ends, so a stalled reader holds whole lines (20 of 20)", async () => {
  const dir = await Deno.makeTempDir();
  const fifo = `${dir}/pipe`;
  assert((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
  const O_RDWR_NONBLOCK = 0o2 | 0o4000; // O_RDWR on a FIFO: both ends, no wait for a peer
  try {
    for (let round = 0; round < 20; round++) {
      const fd = libc().open(new TextEncoder().encode(fifo + "\0"), O_RDWR_NONBLOCK);
      assert(fd >= 0);
      const out = new FdWriter(fd);
      const w = new LineWriter(out);
      // Lines of varied length, as JSON lines are; nobody reads the pipe until the drain ends.
      const pad = (i: number) => 20 + ((round * 7919 + i * 104729) % 900);
      for (let i = 0; i < 3000; i++) w.push(JSON.stringify({ i, pad: "x".repeat(pad(i)) }));
      const r = w.drain(20, (ms) => out.writable(ms));
      const got = readAll(fd);
      libc().close(fd);
      assert(got.endsWith("\n"), `round ${round}: the last line is whole`);
      const lines = got.split("\n").slice(0, -1);
      lines.forEach((l, i) => assertEquals(JSON.parse(l).i, i));
      assertEquals(lines.length + r.unwrittenLines, 3000, `round ${round}: every line counted`);
      assertEquals(r.torn, false);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function readAll(fd: number): string {
  const buf = new Uint8Array(65536);
  let s = "";
  const d = new TextDecoder();
  for (;;) {
    const n = Number(libc().read(fd, buf, BigInt(buf.length)));
    if (n <= 0) return s + d.decode();
    s += d.decode(buf.subarray(0, n), { stream: true });
  }
}

Deno.test("FdWriter: a regular file takes each buffer whole; a pipe is written by PIPE_BUF", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/out`;
    const O_WRONLY_CREAT = 0o1 | 0o100;
    const fd = libc().openMode(new TextEncoder().encode(path + "\0"), O_WRONLY_CREAT, 0o600);
    assert(fd >= 0);
    const out = new FdWriter(fd);
    assert(out.regularFile);
    const lines = Array.from(
      { length: 2000 },
      (_, i) => JSON.stringify({ i, pad: "y".repeat(i % 300) }),
    );
    const bytes = new TextEncoder().encode(lines.join("\n") + "\n");
    assertEquals(out.writeNow(bytes), bytes.length);
    libc().close(fd);
    assertEquals(await Deno.readTextFile(path), lines.join("\n") + "\n");
    const fifo = `${dir}/pipe`;
    assert((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    const pipeFd = libc().open(new TextEncoder().encode(fifo + "\0"), 0o2 | 0o4000);
    assert(!new FdWriter(pipeFd).regularFile);
    libc().close(pipeFd);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
