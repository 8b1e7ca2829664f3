import { assert, assertEquals } from "@std/assert";
import {
  bootTag,
  isProcessId,
  monotonicOfTicks,
  processId,
  ticksOf,
} from "../lib/tree/identity.ts";
import { ev, type FakeProc, harness } from "./fixtures.ts";

Deno.test("identity: boot tag, id form, tick conversions", () => {
  const tag = bootTag("4f1c2b7a-9d3e-4c21-8a6f-0b5e7d9c1a23\n");
  assertEquals(tag, "Txwrep0-TCE"); // base64url of 4f1c2b7a9d3e4c21
  assertEquals(processId(tag, 123456, 4242), "Txwrep0-TCE.2n9c.39u");
  assert(isProcessId("Txwrep0-TCE.2n9c.39u"));
  assert(!isProcessId("sshd") && !isProcessId("/usr/bin/npm") && !isProcessId("4242"));
  assertEquals(bootTag("garbage"), "noboot");
  assertEquals(ticksOf(5e9, 1e9), 600);
  assertEquals(monotonicOfTicks(600, 1e9), 5e9);
});

Deno.test("identity: one id per process, parent_id, start_time, duration_ms", () => {
  const procs = new Map<number, FakeProc>([
    [1, { comm: "init", ppid: 0, startTicks: 1 }],
    [100, { comm: "sh", ppid: 1, startTicks: 50 }],
  ]);
  const h = harness(procs);
  h.run([
    ev.fork(101, 100, 1000),
    ev.exec(101, 1000.5),
    ev.exit(101, 0, 100, 1300),
    ev.fork(101, 100, 2000), // the pid again: another process
  ]);
  const [fork, exec, exit, again] = h.records;
  assert(fork.id && fork.id === exec.id && exec.id === exit.id, JSON.stringify([fork, exec, exit]));
  assertEquals(fork.parent_id, h.tree.idOf(h.tree.get(100)!));
  assertEquals(fork.start_time, "1970-01-01T00:00:01.000000Z");
  assertEquals(exit.duration_ms, 300);
  assert(again.id !== fork.id, "a reused pid is another process");
  assertEquals(h.tree.byId(again.id!), h.tree.get(101));
  assertEquals(h.tree.byId(fork.id), undefined, "the old process is gone from the pid");
  // A process older than proctree: its start from stat ticks, 10 ms precision.
  assertEquals(h.tree.startOf(h.tree.get(100)!), 500e6);
});
