import { assert, assertEquals } from "@std/assert";
import { noKernel, parseLines, sleep, spawnAndWait, startProctree } from "./kernel.ts";

const ignore = noKernel !== null;

async function someProcesses(n = 3) {
  for (let i = 0; i < n; i++) await spawnAndWait("sh", ["-c", "sleep 0.05"]);
  await sleep(200);
}

Deno.test(
  { name: "kernel: --output appends to a 0600 file, --truncate empties it", ignore },
  async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/events.jsonl`;
    try {
      const w = await startProctree(["watch", "-o", path]);
      await someProcesses();
      assertEquals((await w.stop()).stdout, "", "nothing on stdout");
      assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
      const first = parseLines(await Deno.readTextFile(path)).length;
      assert(first > 0);
      const again = await startProctree(["watch", "-o", path]);
      await someProcesses();
      await again.stop();
      const second = parseLines(await Deno.readTextFile(path)).length;
      assert(second > first, "appended, not truncated");
      const fresh = await startProctree(["watch", "-o", path, "--truncate"]);
      await sleep(100);
      await fresh.stop();
      assert(parseLines(await Deno.readTextFile(path)).length < second);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  { name: "kernel: SIGHUP reopens the log (logrotate), --rotate-bytes rotates", ignore },
  async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/events.jsonl`;
    try {
      const w = await startProctree(["watch", "-o", path]);
      await someProcesses();
      await Deno.rename(path, `${path}.old`);
      w.child.kill("SIGHUP");
      await sleep(200);
      await someProcesses();
      await w.stop();
      assert(parseLines(await Deno.readTextFile(`${path}.old`)).length > 0);
      assert(parseLines(await Deno.readTextFile(path)).length > 0, "new file after SIGHUP");
      assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);

      const r = await startProctree(["watch", "-o", `${dir}/r.jsonl`, "--rotate-bytes", "2k"]);
      await someProcesses(10);
      await r.stop();
      const rotated = await Deno.readTextFile(`${dir}/r.jsonl.1`);
      assert(rotated.length >= 2048, "rotated at the size");
      parseLines(rotated);
      parseLines(await Deno.readTextFile(`${dir}/r.jsonl`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({ name: "kernel: --stats prints periodic stats lines", ignore }, async () => {
  const w = await startProctree(["watch", "--stats", "1", "--events", "exec"]);
  await sleep(2300);
  const { records } = await w.stop();
  const stats = records.filter((r) => r.event === "stats");
  assert(stats.length >= 1 && stats.length <= 3, `${stats.length} stats lines`);
  for (const k of ["events", "events_per_s", "lost", "tree_live", "tree_exited", "rss_bytes"]) {
    assert(typeof stats[0][k] === "number", k);
  }
});

Deno.test("cli: --truncate without --output is a usage error", async () => {
  const { PROCTREE } = await import("./kernel.ts");
  const r = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "watch", "--truncate"],
    stderr: "piped",
  })
    .output();
  assertEquals(r.code, 2);
});
