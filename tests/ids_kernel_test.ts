// Records that join (issue 14, first part): id, parent_id, start_time, duration_ms, --under ID.
import { assert, assertEquals } from "@std/assert";
import { noKernel, of, sleep, spawnAndWait, startProctree } from "./kernel.ts";
import { readFileText } from "../ffi/procfs.ts";

const ignore = noKernel !== null;

Deno.test(
  { name: "kernel: one id per process, the child's parent_id, durations", ignore },
  async () => {
    const w = await startProctree(["watch"]);
    const { pid: sh } = await spawnAndWait("sh", ["-c", "sleep 0.3; true"]);
    await sleep(200);
    const { records } = await w.stop();
    const mine = of(records, sh);
    assert(mine.length >= 3, JSON.stringify(mine));
    assertEquals(new Set(mine.map((r) => r.id)).size, 1, "every line of the shell has one id");
    const id = mine[0].id!;
    assert(/^[A-Za-z0-9_-]{11}\.[0-9a-z]+\.[0-9a-z]+$/.test(id), id);
    const child = records.find((r) =>
      r.event === "exec" && r.argv?.[0] === "sleep" && r.ppid === sh
    )!;
    assertEquals(child.parent_id, id);
    const exit = of(records, child.pid!, "exit")[0];
    assert(exit.duration_ms! >= 300, `sleep 0.3 took ${exit.duration_ms} ms`);
    assert(exit.start_time! < exit.time, "started before it ended");
  },
);

Deno.test({ name: "kernel: --under ID follows that process", ignore }, async () => {
  const holder = new Deno.Command("sh", { args: ["-c", "sleep 1.5; sleep 0.1"] }).spawn();
  // The id, computed independently: boot id, stat's start ticks, pid (README).
  const idOut = await new Deno.Command("sh", {
    args: ["-c", `cut -d' ' -f22 /proc/${holder.pid}/stat`],
    stdout: "piped",
  }).output();
  const ticks = Number(new TextDecoder().decode(idOut.stdout).trim());
  // Deno's file API needs --allow-all for /proc: read it as proctree does, through libc.
  const bootId = readFileText("/proc/sys/kernel/random/boot_id") ?? "";
  const { bootTag, processId } = await import("../lib/tree/identity.ts");
  const id = processId(bootTag(bootId), ticks, holder.pid);
  const w = await startProctree(["watch", "--events", "exec", "--under", id]);
  await holder.status;
  await sleep(200);
  const { records } = await w.stop();
  assert(records.some((r) => r.argv?.join(" ") === "sleep 0.1"), JSON.stringify(records));
  assert(
    records.every((r) => r.event !== "exec" || String(r.chain).includes(`;${holder.pid}|sh|`)),
  );
});
