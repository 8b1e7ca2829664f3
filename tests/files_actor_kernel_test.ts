// --files names the process that made a change by identity, not by a pid number looked up
// later (issue 27): a pid reused while proctree is stopped never lends the newcomer's name,
// and a change is printed after the exec line of the process that made it.
import { assert, assertEquals } from "@std/assert";
import { noKernel, sleep, startProctree } from "./kernel.ts";
import type { WatchRecord } from "../lib/record/record.ts";

const ignore = noKernel !== null;

async function bash(script: string): Promise<string> {
  const r = await new Deno.Command("bash", { args: ["-c", script], stderr: "piped" }).output();
  assert(r.success, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout);
}

Deno.test({
  name: "kernel: --files: a pid reused while proctree is stopped never names the newcomer",
  ignore,
}, async () => {
  const w = await Deno.makeTempDir({ prefix: "proctree-reuse-" });
  try {
    const p = await startProctree(["watch", "--files", w]);
    p.child.kill("SIGSTOP");
    // Ten writers, each followed by a `sleep` on the pid it left (the kernel hands out the
    // pid after ns_last_pid next).
    const pairs = await bash(`for i in $(seq 10); do
      a=$(sh -c 'echo $$; : > ${w}/f'$i)
      echo $((a-1)) > /proc/sys/kernel/ns_last_pid
      sleep 3 & echo "$i $a $!"
    done`);
    p.child.kill("SIGCONT");
    await sleep(1000);
    const { records } = await p.stop();
    const reused = pairs.trim().split("\n").map((l) => l.split(" ").map(Number))
      .filter(([, a, b]) => a === b);
    assert(reused.length >= 8, `pids reused: ${pairs}`);
    const newcomer = new Map<number, WatchRecord>();
    for (const r of records) if (r.event === "fork" && r.comm !== "sh") newcomer.set(r.pid!, r);
    for (const [i, pid] of reused) {
      const line = records.find((r) => r.event === "file" && r.path === `${w}/f${i}`);
      assert(line, `no line for f${i}`);
      assertEquals(line.pid, pid);
      // Both held the pid while proctree was stopped: the writer is not known (null), and
      // never the sleep that holds the pid now.
      assert(line.comm !== "sleep" && line.id !== newcomer.get(pid)?.id, JSON.stringify(line));
    }
  } finally {
    await Deno.remove(w, { recursive: true });
  }
});

Deno.test({
  name: "kernel: --files: 1 000 fork-exec-writes, each printed after its exec, by the exec'd",
  ignore,
}, async () => {
  const w = await Deno.makeTempDir({ prefix: "proctree-order-" });
  try {
    const p = await startProctree(["watch", "--files", w]);
    await bash(`cd ${w}; for i in $(seq 1000); do touch f$i; done`);
    await sleep(1000);
    const { records } = await p.stop();
    const execAt = new Map<string, number>();
    records.forEach((r, i) => {
      if (r.event === "exec" && r.id) execAt.set(r.id, i);
    });
    let lines = 0;
    records.forEach((r, i) => {
      if (r.event !== "file" || r.action !== "create") return;
      lines++;
      assert(
        r.id && execAt.has(r.id) && execAt.get(r.id)! < i,
        `before its exec: ${JSON.stringify(r)}`,
      );
      assert(r.comm === null || r.comm === "touch", JSON.stringify(r));
    });
    assertEquals(lines, 1000);
  } finally {
    await Deno.remove(w, { recursive: true });
  }
});
