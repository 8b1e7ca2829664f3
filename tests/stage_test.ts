// Adding a source: test-only stages plugged into the processor with one line each, the way
// a real source is (lib/pipeline/stage.ts). One refines exec facts when its batch is drained,
// one settles them late (the batch and every batch after it wait), one adds its own lines.
import { assertEquals } from "@std/assert";
import { ev, type FakeProc, harness } from "./fixtures.ts";
import {
  type ExecStage,
  type LineStage,
  LossQueue,
  type StageLine,
  type StageLoss,
  WAIT,
} from "../lib/pipeline/stage.ts";
import type { ExecInfo } from "../lib/tree/tree.ts";

function world(): Map<number, FakeProc> {
  return new Map<number, FakeProc>([[1, { comm: "init", ppid: 0, startTicks: 1 }]]);
}

/** Refines: every exec's argv from the stage's own records, by pid. */
class ArgvStage implements ExecStage {
  readonly name = "test-argv";
  readonly records = new Map<number, string[]>();
  readonly lossQueue = new LossQueue();
  #given = 0;
  losses(): StageLoss[] {
    return this.lossQueue.take();
  }
  exec(pid: number, _execNs: number, facts: ExecInfo): ExecInfo {
    const argv = this.records.get(pid);
    if (!argv) return facts;
    this.#given++;
    return { ...facts, argv };
  }
  lost(): void {}
  sweep(): void {}
  counters(): Readonly<Record<string, number>> {
    return { execs_argv_from_test: this.#given };
  }
}

/** Settles late: an exec waits for its comm until it arrives or the wait is over. */
class LateStage implements ExecStage {
  readonly name = "test-late";
  readonly waitMs = 100;
  readonly comms = new Map<number, string>();
  losses(): StageLoss[] {
    return [];
  }
  settle(
    pid: number,
    _execNs: number,
    _startNs: number | null,
    facts: ExecInfo,
    waitedOut: boolean,
  ): ExecInfo | typeof WAIT {
    const comm = this.comms.get(pid);
    if (comm === undefined) return waitedOut ? facts : WAIT;
    return { ...facts, comm };
  }
  lost(): void {}
  sweep(): void {}
  counters(): Readonly<Record<string, number>> {
    return {};
  }
}

/** Lines of its own: one `probe` line per pid handed to it, by start time. */
class ProbeStage implements LineStage {
  readonly name = "test-probe";
  readonly queued: StageLine[] = [];
  losses(): StageLoss[] {
    return [];
  }
  due(appliedNs: number): StageLine[] {
    const due = this.queued.filter((l) => l.timeNs <= appliedNs);
    this.queued.splice(0, due.length);
    return due;
  }
  age(): void {}
  holding(): boolean {
    return false;
  }
  counters(): Readonly<Record<string, number>> {
    return { probes: 1 };
  }
}

Deno.test("stage: a test-only source refines exec facts with one line; its losses and counters are said", () => {
  const argv = new ArgvStage();
  const h = harness(world(), { stages: [argv] });
  argv.records.set(70, ["tiny", "--flag"]);
  argv.lossQueue.add("test_full", 3);
  h.run([ev.fork(70, 1, 1000), ev.exec(70, 1000.1)]);
  const [lost, fork, exec] = h.records;
  assertEquals([lost.event, lost.reason, lost.count], ["lost", "test_full", 3]);
  assertEquals([fork.event, exec.event, exec.argv], ["fork", "exec", ["tiny", "--flag"]]);
  assertEquals(h.processor.counters.stages, { execs_argv_from_test: 1 });
});

Deno.test("stage: one that settles late holds its batch and every later one, in kernel order", () => {
  const late = new LateStage();
  let nowNs = 0;
  const h = harness(world(), { stages: [late], now: () => nowNs });
  nowNs = 1000e6;
  h.run([ev.fork(70, 1, 1000), ev.exec(70, 1000.1)]);
  h.run([ev.fork(71, 1, 1001)]);
  // The exec waits for its comm; the fork before it is out, the later batch is not.
  assertEquals(h.records.map((r) => [r.event, r.pid]), [["fork", 70]]);
  late.comms.set(70, "late-name");
  assertEquals(h.processor.dueInMs(), 100);
  h.processor.flush(); // as the loop's drained/flush would: it settles now
  assertEquals(h.records.map((r) => [r.event, r.pid, r.comm]), [
    ["fork", 70, "init"],
    ["exec", 70, "late-name"],
    ["fork", 71, "init"],
  ]);
  // Past its wait an exec keeps the facts it has.
  h.run([ev.fork(72, 1, 1002), ev.exec(72, 1002.1)]);
  nowNs += 200e6;
  h.processor.loopHandlers().drained!();
  assertEquals(h.records.slice(-1).map((r) => [r.event, r.pid, r.comm]), [["exec", 72, null]]);
});

Deno.test("stage: a test-only source adds its own lines, each with its process by start time", () => {
  const probe = new ProbeStage();
  const h = harness(world(), { lineStages: [probe] });
  h.run([ev.fork(80, 1, 1000)]);
  probe.queued.push({ timeNs: 1000.5e6, pid: 1, startTicks: 1, event: "probe", fields: { n: 1 } });
  // Without a start time the stage cannot say who held pid 80: null, never a guess.
  probe.queued.push({ timeNs: 1000.6e6, pid: 80, event: "probe", fields: { n: 2 } });
  h.run([ev.exit(80, 0, 1, 1001)]);
  const probes = h.records.filter((r) => (r.event as string) === "probe");
  assertEquals(probes.map((r) => [r.pid, r.comm, r.n]), [[1, "init", 1], [80, null, 2]]);
  assertEquals(h.processor.counters.stages, { probes: 1 });
});
