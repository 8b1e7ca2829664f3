/**
 * The read loop shared by `watch`, `run` and the library: drain every source (in bounded
 * batches), process, flush, and only then park until a source is readable again.
 *
 * A **source** is one kernel channel: the proc connector drains what it holds, decoded, into
 * the loop's batch without blocking; the others (exec names, audit, files, network, mount
 * changes) feed their stages. The loop never knows what a source is made of, and the same
 * loop runs over test sources.
 *
 * @module
 */

import type { Decoded } from "../event/wire.ts";

/** Where a source puts what it drained. */
export interface BatchSink {
  /** Decoded items of this drain, in arrival order; sources append to it. */
  readonly batch: Decoded[];
  /**
   * Called by a source after each unit (datagram) it appended: `batch[from…]` are new. The
   * processor reads `/proc` for execs here, before the rest is drained.
   */
  decoded(from: number): void;
  /** The source's kernel queue overflowed: events were dropped before what follows. */
  overrun(): void;
}

/**
 * One kernel channel. `ffi/source/connector.ts` fills the batch; the others append nothing
 * to it: they feed their stages (`stage.ts`). Sources are drained in order, the connector
 * first. Tests make their own.
 */
export interface Source {
  /** A short name for messages and stats (`connector`). */
  readonly name: string;
  /** The descriptor the loop polls for input. */
  readonly fd: number;
  /**
   * The `poll(2)` events that mean input (default `POLLIN`; mountinfo signals `POLLPRI`);
   * 0: never wakes the loop, drained whenever the loop turns for another source.
   */
  readonly pollEvents?: number;
  /** True when the source holds input its descriptor does not show (already read). */
  readonly pending: boolean;
  /** Appends up to `max` units without blocking; returns how many were taken. */
  drain(sink: BatchSink, max: number): number;
  /**
   * The loop is behind (true: its drains within a {@linkcode STORM_WINDOW_MS} window, or a
   * longer one while it was starved of CPU, took a storm's worth of units) or no longer
   * (false: a window took less): a source may read ahead meanwhile, on a thread of its own
   * (the connector's reader thread).
   */
  readAhead?(on: boolean): void;
  /** Releases the channel. */
  close(): void | Promise<void>;
}

/** How a wait ended. */
export type WaitOutcome = "readable" | "woken" | "timeout" | "hangup";

/** Parks the loop (`ffi/poller.ts` polls the sources' descriptors). */
export interface Waiter {
  /** Parks until readable, woken, hang-up or `timeoutMs` (-1: forever). */
  wait(timeoutMs?: number): Promise<WaitOutcome>;
  /** The same, blocking the calling thread (short timeouts only). */
  waitSync?(timeoutMs: number): WaitOutcome;
  /**
   * Blocks the calling thread for `timeoutMs` whether or not a source is readable; ends
   * early only on a wake-up or hang-up (then `"woken"` / `"hangup"`, else `"timeout"`).
   */
  sleepSync?(timeoutMs: number): WaitOutcome;
}

/** Callbacks of {@linkcode EventLoop}. */
export interface LoopHandlers {
  /**
   * After each unit a source decoded: `batch[from…]` are new. `storm`: the loop is pacing a
   * storm, so what was decoded waited up to the pace.
   */
  decoded?(batch: Decoded[], from: number, storm: boolean): void;
  /** One drained batch, in arrival order; `complete` when every source was left empty. */
  batch(batch: Decoded[], complete: boolean): void;
  /** A source's kernel queue overflowed (before the batch that follows it). */
  overrun(): void;
  /** After every drain, whether it found anything: deferred work that is now due. */
  drained?(): void;
  /** In how many ms deferred work falls due (the loop wakes by then); null: none. */
  dueInMs?(): number | null;
  /** When the loop ends: deferred work is done now, whatever it waited for. */
  flush?(): void;
  /**
   * After each drain and at least every `tickMs` when idle: sweep, stats, and output.
   * `idle` is true when the loop is about to park: flush everything then; while busy,
   * flushing every few milliseconds saves a write per wake-up.
   */
  tick(idle: boolean): void;
  /** Checked after every wake-up; true ends the loop. */
  stopped(): boolean;
  /** The watched output went away (see `Poller.watchHangup`). */
  hangup?(): void;
}

/** Most units taken per source in one drain before output is flushed and timers run. */
export const MAX_BATCH = 4096;

/**
 * After a drain that found events, the loop waits this long synchronously for the next
 * one before it parks asynchronously: during a storm each wake-up then costs one poll
 * syscall instead of an async FFI round trip.
 */
export const SYNC_WAIT_MS = 5;

/** Longest the loop keeps the JS thread to itself (signals and timers wait that long). */
export const MAX_SYNC_SPAN_MS = 50;

/**
 * In a storm, the least time from one drain to the next (the default of `EventLoop`'s
 * `paceMs`). A wake-up costs far more than an event (a context switch, a syscall per
 * source, an output write, and code that runs cold after the storm ran): on a 2-CPU VM
 * 0.4–0.7 ms of CPU, against tens of µs per event. Draining at most every 40 ms in a storm
 * puts tens to hundreds of events in each wake-up (10 ms left proctree above forkstat's
 * CPU per event on a 2-worker storm, 1.15×; 20 ms at 1.03× on the 8-worker one; 40 ms
 * took 18 % off 20 ms's). The price is promptness: an exec is read up to 40 ms late, when
 * a short-lived process is gone and what changes without an event (argv, cwd, login uid,
 * cgroup) may have changed — `exec_reads.ts` keeps those only from a read within
 * `STORM_FRESH_READ_NS` of the exec.
 */
export const PACE_MS = 40;

/**
 * {@linkcode PACE_MS} when exec facts come from the BPF source: its records are written
 * inside `execve`, so a later drain loses nothing but promptness (a storm's lines come up
 * to 100 ms late). Measured on the fast storm (BENCHMARKS.md): ~10 % less CPU than 40 ms;
 * 200 ms took no more off.
 */
export const BPF_PACE_MS = 100;

/** A storm: at least this many units drained within one {@linkcode STORM_WINDOW_MS}. */
export const STORM_UNITS = 50;

/**
 * What {@linkcode STORM_UNITS} is when exec facts come from `/proc` only (no BPF source):
 * pacing then costs the argv of every short-lived process, so only a true storm is paced
 * (an `apt-get` or a shell loop drains 100–200 units per window; the storm benchmarks
 * 800 and more).
 */
export const PROC_STORM_UNITS = 400;

/**
 * The window over which the drain rate is judged; the pace holds for the next one. A loop
 * paced at more than half of it judges over twice its pace instead (with as many more
 * units): a window holding a single paced drain ends the storm whenever that drain finds
 * little, and the next window is then drained event by event (measured at a 100 ms pace:
 * 4 067 drains over a 2-worker storm of 30 000 events, 420 with the longer window).
 */
export const STORM_WINDOW_MS = 100;

/** Drives sources through handlers; see the module doc. */
export class EventLoop implements BatchSink {
  readonly batch: Decoded[] = [];
  #sources: readonly Source[];
  #waiter: Waiter;
  #h: LoopHandlers;
  #tickMs: number;
  #paceMs: number;
  /** The storm window ({@linkcode STORM_WINDOW_MS}, or twice the pace) and its threshold. */
  #windowMs: number;
  #stormUnits: number;
  #syncSince = performance.now();
  #drainStartMs = -Infinity;
  /** Units drained in the current storm window, and whether the last window was a storm. */
  #windowUnits = 0;
  #windowStartMs = -Infinity;
  #storm = false;
  /** Told to the sources (`Source.readAhead`). */
  #behind = false;

  /**
   * A loop over `sources`, parked by `waiter`, ticking at least every `tickMs` when idle,
   * and draining at most every `paceMs` in a storm (`stormUnits` within
   * {@linkcode STORM_WINDOW_MS}; `paceMs` 0: at once, as `--realtime` wants: it reads each
   * process before it can exit). Outside a storm every wake-up drains at once.
   */
  constructor(
    sources: readonly Source[],
    waiter: Waiter,
    handlers: LoopHandlers,
    tickMs = 1000,
    paceMs = 0,
    stormUnits: number = STORM_UNITS,
  ) {
    this.#windowMs = Math.max(STORM_WINDOW_MS, 2 * paceMs);
    this.#stormUnits = Math.ceil((stormUnits * this.#windowMs) / STORM_WINDOW_MS);
    this.#sources = sources;
    this.#waiter = waiter;
    this.#h = handlers;
    this.#tickMs = tickMs;
    this.#paceMs = paceMs;
  }

  decoded(from: number): void {
    this.#h.decoded?.(this.batch, from, this.#storm && this.#paceMs > 0);
  }

  overrun(): void {
    this.#h.overrun();
  }

  /** One drain of every source into one batch; returns the most units any source gave. */
  drainOnce(): number {
    const startMs = this.#drainStartMs = performance.now();
    // The first drain takes what queued while proctree started: a backlog, not a storm.
    const first = this.#windowStartMs === -Infinity;
    if (startMs - this.#windowStartMs >= this.#windowMs) {
      this.#storm = this.#windowUnits >= this.#stormUnits &&
        startMs - this.#windowStartMs < 2 * this.#windowMs;
      if (this.#behind && this.#windowUnits < this.#stormUnits) this.#setBehind(false);
      this.#windowStartMs = startMs;
      this.#windowUnits = 0;
    }
    this.batch.length = 0;
    let most = 0;
    for (const s of this.#sources) most = Math.max(most, s.drain(this, MAX_BATCH));
    if (!first) this.#windowUnits += most;
    // Behind at once, not at the window's end: a loop starved of CPU drains rarely, and the
    // kernel's queue may be full before its next drain.
    if (!this.#behind && this.#windowUnits >= this.#stormUnits) this.#setBehind(true);
    // A source may feed a part instead of the batch (file changes): the batch still runs.
    if (this.batch.length || most > 0) this.#h.batch(this.batch, most < MAX_BATCH);
    this.#h.drained?.();
    return most;
  }

  /**
   * Waits for more after a drain that took `drained` units: while busy, synchronously (out
   * the pace, then a few ms for input), else parked until a source is readable, a wake-up,
   * or the tick period.
   */
  async park(drained: number): Promise<void> {
    // A source holding input its descriptor does not show is drained at once — but still
    // at the pace in a storm (the connector's reader thread fills its backlog all along).
    const pending = this.#sources.some((s) => s.pending);
    if (pending && !this.#storm) return;
    let outcome: WaitOutcome | undefined;
    const waitSync = this.#waiter.waitSync;
    if (
      (drained > 0 || pending) && waitSync &&
      performance.now() - this.#syncSince < MAX_SYNC_SPAN_MS
    ) {
      this.#h.tick(false);
      outcome = this.#paceSync();
      if (outcome === "timeout" && pending) return;
      if (outcome === "timeout") outcome = waitSync.call(this.#waiter, SYNC_WAIT_MS);
      if (outcome === "readable") return;
    }
    this.#h.tick(true);
    if (outcome !== "woken" && outcome !== "hangup") {
      const due = this.#h.dueInMs?.() ?? null;
      outcome = await this.#waiter.wait(
        pending ? 0 : due === null ? this.#tickMs : Math.min(this.#tickMs, Math.ceil(due)),
      );
    }
    this.#syncSince = performance.now();
    if (outcome === "hangup") this.#h.hangup?.();
  }

  #setBehind(on: boolean): void {
    this.#behind = on;
    for (const s of this.#sources) s.readAhead?.(on);
  }

  /** In a storm, sleeps out the rest of the pace since the last drain began; `"timeout"` when it did. */
  #paceSync(): WaitOutcome {
    if (!this.#storm) return "timeout";
    const restMs = Math.floor(this.#drainStartMs + this.#paceMs - performance.now());
    const sleepSync = this.#waiter.sleepSync;
    if (restMs < 1 || !sleepSync) return "timeout";
    return sleepSync.call(this.#waiter, restMs);
  }

  /**
   * Takes what the kernel had already queued when the loop was stopped, lets deferred work
   * wait out its due time (it is bounded: audit records of the last execs are still on
   * their way), then ticks.
   */
  finish(): void {
    while (this.drainOnce() >= MAX_BATCH) { /* more queued */ }
    const waitSync = this.#waiter.waitSync;
    for (let due = this.#h.dueInMs?.() ?? null; due !== null && waitSync;) {
      waitSync.call(this.#waiter, Math.min(Math.ceil(due), SYNC_WAIT_MS));
      this.drainOnce();
      due = this.#h.dueInMs?.() ?? null;
    }
    this.#h.flush?.();
    this.#h.tick(true);
  }

  /** Turns until stopped, then {@linkcode finish}es: nothing queued at the stop is lost. */
  async run(): Promise<void> {
    while (!this.#h.stopped()) {
      const n = this.drainOnce();
      if (this.#h.stopped()) break;
      await this.park(n);
    }
    this.finish();
  }
}
