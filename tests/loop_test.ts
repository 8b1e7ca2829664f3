import { assert, assertEquals } from "@std/assert";
import {
  type BatchSink,
  BPF_PACE_MS,
  EventLoop,
  type LoopHandlers,
  MAX_BATCH,
  PACE_MS,
  PROC_STORM_UNITS,
  type Source,
  STORM_UNITS,
  STORM_WINDOW_MS,
  type Waiter,
  type WaitOutcome,
} from "../lib/pipeline/loop.ts";
import type { Decoded } from "../lib/event/wire.ts";
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

/** A waiter that records how the loop parks: sync waits say "readable" while `more` holds. */
class RecordingWaiter implements Waiter {
  sleeps: number[] = [];
  more = true;
  wait(): Promise<WaitOutcome> {
    return Promise.resolve("timeout");
  }
  waitSync(): WaitOutcome {
    return this.more ? "readable" : "timeout";
  }
  sleepSync(timeoutMs: number): WaitOutcome {
    this.sleeps.push(timeoutMs);
    return "timeout";
  }
}

/**
 * Loop handlers that record, per decoded unit, whether the loop said it was pacing a storm
 * (reads then keep less).
 */
function stormRecorder(storms: boolean[]): LoopHandlers {
  return {
    decoded: (_b, _from, storm) => storms.push(storm),
    batch: () => {},
    overrun: () => {},
    tick: () => {},
    stopped: () => false,
  };
}

Deno.test("loop: drains at once outside a storm, at most every PACE_MS in one", async () => {
  const src = new QueueSource();
  const waiter = new RecordingWaiter();
  const storms: boolean[] = [];
  const loop = new EventLoop([src], waiter, stormRecorder(storms), 1000, PACE_MS);
  // A few events: every wake-up drains at once.
  for (let i = 0; i < 3; i++) {
    src.queue.push(ev.exec(10 + i, i));
    await loop.park(loop.drainOnce());
  }
  assertEquals(waiter.sleeps, []);
  assertEquals(storms, [false, false, false]);
  // A storm window (≥ STORM_UNITS drained within STORM_WINDOW_MS): the next one is paced.
  for (let i = 0; i < STORM_UNITS; i++) src.queue.push(ev.exec(100 + i, i));
  loop.drainOnce();
  await new Promise((r) => setTimeout(r, STORM_WINDOW_MS + 1));
  await loop.park(0); // an idle park: the loop's synchronous span starts again
  src.queue.push(ev.exec(200, 1));
  await loop.park(loop.drainOnce());
  assertEquals(waiter.sleeps.length, 1);
  assert(waiter.sleeps[0] >= 1 && waiter.sleeps[0] <= PACE_MS, String(waiter.sleeps));
  assertEquals(storms.at(-1), true, "the paced drain's reads are told they may be late");
  // Unpaced, as --realtime reads: no sleep even in a storm.
  const rt = new RecordingWaiter();
  const rtStorms: boolean[] = [];
  const unpaced = new EventLoop([src], rt, stormRecorder(rtStorms));
  for (let i = 0; i < STORM_UNITS; i++) src.queue.push(ev.exec(300 + i, i));
  unpaced.drainOnce();
  await new Promise((r) => setTimeout(r, STORM_WINDOW_MS + 1));
  await unpaced.park(0);
  src.queue.push(ev.exec(400, 1));
  await unpaced.park(unpaced.drainOnce());
  assertEquals(rt.sleeps, []);
  assert(rtStorms.every((s) => !s), "unpaced reads are never storm reads");
});

Deno.test("loop: paced at 100 ms, a drain that finds little does not end the storm", async () => {
  const src = new QueueSource();
  const storms: boolean[] = [];
  const loop = new EventLoop(
    [src],
    new RecordingWaiter(),
    stormRecorder(storms),
    1000,
    BPF_PACE_MS,
  );
  loop.drainOnce(); // the first drain is a backlog, never a storm
  // A steady storm drained at the pace (twice the rate that makes one), one drain finding
  // little in the middle of it.
  let pid = 100;
  for (const units of [2 * STORM_UNITS, 2 * STORM_UNITS, 2 * STORM_UNITS, 2, 2 * STORM_UNITS]) {
    await new Promise((r) => setTimeout(r, BPF_PACE_MS + 1));
    for (let i = 0; i < units; i++) src.queue.push(ev.exec(pid++, 0));
    storms.length = 0;
    loop.drainOnce();
  }
  assert(storms.length > 0 && storms.every((s) => s), "the last drain is still a storm's");
});

Deno.test("loop: with a higher storm threshold, a burst below it is not paced", async () => {
  const src = new QueueSource();
  const waiter = new RecordingWaiter();
  const handlers = {
    batch: () => {},
    overrun: () => {},
    tick: () => {},
    stopped: () => false,
  };
  const loop = new EventLoop([src], waiter, handlers, 1000, PACE_MS, PROC_STORM_UNITS);
  await loop.park(loop.drainOnce()); // the first drain is a backlog, never a storm
  // As many units as make a storm at the default threshold: no storm at this one.
  for (let i = 0; i < STORM_UNITS * 2; i++) src.queue.push(ev.exec(100 + i, i));
  loop.drainOnce();
  await new Promise((r) => setTimeout(r, STORM_WINDOW_MS + 1));
  await loop.park(0);
  src.queue.push(ev.exec(200, 1));
  await loop.park(loop.drainOnce());
  assertEquals(waiter.sleeps, [], "drained at once");
  // A true storm at this threshold is paced.
  for (let i = 0; i < PROC_STORM_UNITS; i++) src.queue.push(ev.exec(300 + i, i));
  loop.drainOnce();
  await new Promise((r) => setTimeout(r, STORM_WINDOW_MS + 1));
  await loop.park(0);
  src.queue.push(ev.exec(400, 1));
  await loop.park(loop.drainOnce());
  assertEquals(waiter.sleeps.length, 1);
});

/** A source with input its descriptor does not show (a backlog filled by another thread). */
class BacklogSource implements Source {
  readonly name = "backlog";
  readonly fd = -1;
  #inner = new QueueSource();
  queue: Decoded[] = this.#inner.queue;
  told: boolean[] = [];
  get pending(): boolean {
    return this.queue.length > 0;
  }
  drain(sink: BatchSink, max: number): number {
    return this.#inner.drain(sink, max);
  }
  readAhead(on: boolean): void {
    this.told.push(on);
  }
  close(): void {}
}

Deno.test("loop: a source is told to read ahead once a window's drains are behind, and told to stop", async () => {
  const src = new BacklogSource();
  const loop = new EventLoop(
    [src],
    new RecordingWaiter(),
    {
      batch: () => {},
      overrun: () => {},
      tick: () => {},
      stopped: () => false,
    },
    1000,
    PACE_MS,
  );
  loop.drainOnce(); // the first drain is a backlog, never behind
  for (let i = 0; i < STORM_UNITS; i++) src.queue.push(ev.exec(100 + i, i));
  loop.drainOnce();
  assertEquals(src.told, [true], "at once, not at the window's end");
  // Starved: the next drain comes long after, and takes a storm's worth again: still behind.
  await new Promise((r) => setTimeout(r, 3 * STORM_WINDOW_MS));
  for (let i = 0; i < STORM_UNITS; i++) src.queue.push(ev.exec(200 + i, i));
  loop.drainOnce();
  assertEquals(src.told, [true]);
  // A window that takes less: no longer behind.
  await new Promise((r) => setTimeout(r, STORM_WINDOW_MS + 1));
  loop.drainOnce();
  await new Promise((r) => setTimeout(r, STORM_WINDOW_MS + 1));
  loop.drainOnce();
  assertEquals(src.told, [true, false]);
});

Deno.test("loop: input a source holds is drained at once, but at the pace in a storm", async () => {
  const src = new BacklogSource();
  const waiter = new RecordingWaiter();
  waiter.more = false;
  const loop = new EventLoop(
    [src],
    waiter,
    {
      batch: () => {},
      overrun: () => {},
      tick: () => {},
      stopped: () => false,
    },
    1000,
    PACE_MS,
  );
  loop.drainOnce();
  src.queue.push(ev.exec(1, 0));
  await loop.park(0);
  assertEquals(waiter.sleeps, [], "outside a storm: no wait at all");
  // A storm: what the source holds waits out the pace, then is drained.
  for (let i = 0; i < STORM_UNITS; i++) src.queue.push(ev.exec(100 + i, i));
  loop.drainOnce();
  await new Promise((r) => setTimeout(r, STORM_WINDOW_MS + 1));
  await loop.park(0);
  src.queue.push(ev.exec(300, 1));
  loop.drainOnce();
  src.queue.push(ev.exec(301, 1)); // arrived in the backlog meanwhile
  await loop.park(1);
  assertEquals(waiter.sleeps.length, 1, String(waiter.sleeps));
  assert(waiter.sleeps[0] >= 1 && waiter.sleeps[0] <= PACE_MS);
  assertEquals(src.queue.length, 1, "left for the next drain, after the pace");
});
