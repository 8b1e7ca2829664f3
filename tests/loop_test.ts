import { assertEquals } from "@std/assert";
import {
  type BatchSink,
  EventLoop,
  MAX_BATCH,
  type Source,
  type Waiter,
  type WaitOutcome,
} from "../lib/loop.ts";
import type { Decoded } from "../lib/wire.ts";
import { ev, type FakeProc, harness } from "./fixtures.ts";

/** A test-only source: hands out queued events, one unit each, like a socket would. */
class QueueSource implements Source {
  readonly name = "queue";
  readonly fd = -1;
  readonly pending = false;
  queue: Decoded[] = [];
  closed = false;
  drain(sink: BatchSink, max: number): number {
    let n = 0;
    while (n < max && this.queue.length) {
      const from = sink.batch.length;
      sink.batch.push(this.queue.shift()!);
      sink.decoded(from);
      n++;
    }
    return n;
  }
  close(): void {
    this.closed = true;
  }
}

/** Never parks: each wait ends at once, as a timeout. */
const noWait: Waiter = { wait: (): Promise<WaitOutcome> => Promise.resolve("timeout") };

Deno.test("loop: a source's events reach the processor through the shared loop", async () => {
  const procs = new Map<number, FakeProc>([[1, { comm: "init", ppid: 0, startTicks: 1 }]]);
  const h = harness(procs);
  procs.set(2, { comm: "sh", ppid: 1, startTicks: 5, argv: ["sh"] });
  const src = new QueueSource();
  src.queue.push(ev.fork(2, 1, 10), ev.exec(2, 10.1), ev.exit(2, 0, 1, 11));
  let ticks = 0;
  await new EventLoop([src], noWait, {
    ...h.processor.loopHandlers(),
    tick: () => void ticks++,
    stopped: () => src.queue.length === 0,
  }).run();
  assertEquals(h.records.map((r) => r.event), ["fork", "exec", "exit"]);
  assertEquals(h.records[1].argv, ["sh"]);
  assertEquals(ticks > 0, true);
});

Deno.test("loop: two sources drain into one batch; a capped drain is not complete", () => {
  const a = new QueueSource();
  const b = new QueueSource();
  for (let i = 0; i < MAX_BATCH + 1; i++) a.queue.push(ev.exec(100 + i, i));
  b.queue.push(ev.exec(7, 0));
  const seen: [number, boolean][] = [];
  const loop = new EventLoop([a, b], noWait, {
    batch: (batch, complete) => seen.push([batch.length, complete]),
    overrun: () => {},
    tick: () => {},
    stopped: () => false,
  });
  loop.drainOnce();
  loop.drainOnce();
  assertEquals(seen, [[MAX_BATCH + 1, false], [1, true]]);
});

Deno.test("loop: events queued when the stop comes are still processed", async () => {
  const src = new QueueSource();
  let processed = 0;
  let stop = false;
  const loop = new EventLoop([src], {
    wait: () => {
      stop = true;
      src.queue.push(ev.exec(9, 1)); // arrives with the stop
      return Promise.resolve("woken" as const);
    },
  }, {
    batch: (batch) => void (processed += batch.length),
    overrun: () => {},
    tick: () => {},
    stopped: () => stop,
  });
  await loop.run();
  assertEquals(processed, 1);
});
