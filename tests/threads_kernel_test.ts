// A process ends when its last thread ends (issue 17, false exits), against the real kernel.
import { assert, assertEquals } from "@std/assert";
import { compileHelper, noKernel, of, runWithSummary, sleep, startProctree } from "./kernel.ts";
import type { SubtreeEntry } from "../lib/report/subtree.ts";

const helper = await compileHelper("threads", ["-pthread"]);
const ignore = noKernel !== null || helper === null;

Deno.test(
  { name: "kernel: pthread_exit in main is no exit; the last thread's is", ignore },
  async () => {
    const w = await startProctree(["watch"]);
    const child = new Deno.Command(helper!, { args: ["mainexit"] }).spawn();
    const status = await child.status;
    await sleep(300);
    const { records } = await w.stop();
    assertEquals(status.code, 5);
    const exits = of(records, child.pid, "exit");
    assertEquals(exits.length, 1, JSON.stringify(exits));
    assertEquals([exits[0].exit_code, exits[0].tid], [5, undefined]);
    const fork = of(records, child.pid, "fork")[0];
    const ms = Date.parse(exits[0].time) - Date.parse(fork.time);
    assert(ms >= 450, `exit reported ${ms} ms after the fork: the main thread's exit, not the end`);
  },
);

Deno.test(
  { name: "kernel: run waits for the last thread and records its child", ignore },
  async () => {
    const r = await runWithSummary(["sh", "-c", `${helper} mainexit & exit 0`]);
    const doc = r.doc;
    assertEquals(r.code, 0, r.stderr);
    const all: SubtreeEntry[] = [];
    const walk = (e: SubtreeEntry) => (all.push(e), e.children.forEach(walk));
    walk(doc.tree);
    const prog = all.find((e) => e.argv?.[1] === "mainexit");
    assert(prog, "the threaded program was recorded");
    assertEquals(prog.exit_code, 5);
    assert(prog.children.some((c) => c.argv?.[0] === "sleep"), "its late child was recorded");
    assertEquals(doc.totals.processes, 3);
  },
);

Deno.test(
  { name: "kernel: execve from a non-main thread keeps the process and its pin", ignore },
  async () => {
    // The exec comes 2 s in: after proctree, started next, is listening.
    const child = new Deno.Command(helper!, { args: ["threadexec", "2000"] }).spawn();
    const w = await startProctree(["watch", "--under", String(child.pid)]);
    await child.status;
    await sleep(300);
    const { records } = await w.stop();
    const mine = of(records, child.pid);
    assertEquals(
      mine.filter((r) => r.event === "exit").map((r) => r.exit_code),
      [0],
      "one exit: the real one",
    );
    const exec = mine.find((r) => r.event === "exec");
    // argv is kept only from a prompt read (README, Guarantees); the name always.
    assertEquals(exec?.comm, "sh");
    if (exec?.argv) assertEquals(exec.argv, ["sh", "-c", "sleep 0.2; true"]);
    assert(
      records.some((r) => r.event === "exec" && r.comm === "sleep"),
      "the subtree after the exec is still under the pinned pid",
    );
  },
);
