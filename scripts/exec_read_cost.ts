/**
 * What the `/proc` reads of one exec cost: each file proctree reads for an exec line, timed
 * on a live process (a `sleep`), through the same libc reader proctree uses.
 *
 *   deno run -A scripts/exec_read_cost.ts [rounds]
 *
 * @module
 */

import { procfs } from "../ffi/procfs.ts";
import { parseContainer } from "../lib/tree/container.ts";

const rounds = Number(Deno.args[0] ?? 20_000);
const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
const pid = child.pid;
await new Promise((r) => setTimeout(r, 100));

function time(name: string, read: () => unknown): void {
  for (let i = 0; i < rounds / 10; i++) read(); // warm up
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) read();
  console.log(`${name.padEnd(36)} ${((performance.now() - t0) * 1000 / rounds).toFixed(2)} µs`);
}

const before = () => {
  procfs.status(pid);
  procfs.cmdline(pid);
  procfs.exe(pid);
};
time("status + cmdline + exe", before);
time("cwd (readlink)", () => procfs.cwd(pid));
time("loginuid", () => procfs.loginUid(pid));
time("cgroup + container parse", () => parseContainer(procfs.cgroup(pid) ?? ""));
time("all six (an exec line today)", () => {
  before();
  procfs.cwd(pid);
  procfs.loginUid(pid);
  parseContainer(procfs.cgroup(pid) ?? "");
});
child.kill();
await child.status;
