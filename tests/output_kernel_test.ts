import { assert, assertEquals, assertMatch } from "@std/assert";
import { noKernel, parseLines, PROCTREE, sleep, spawnAndWait, startProctree } from "./kernel.ts";

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

/** Runs `proctree ARGS` to its end: status and stderr. */
async function proctree(args: string[]): Promise<{ code: number; stderr: string }> {
  const r = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: r.code, stderr: new TextDecoder().decode(r.stderr) };
}

Deno.test(
  { name: "kernel: -o into a kernel interface fails before listening", ignore },
  async () => {
    const r = await proctree(["watch", "-o", "/proc/version"]);
    assertEquals(r.code, 1);
    assertEquals(
      r.stderr,
      "proctree: cannot write /proc/version: it is a kernel interface (proc), not a file\n",
    );
  },
);

Deno.test("report: a file with no watch line is an error, not an empty page", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [log, why] of [["/etc/passwd", /\d+ lines, none of them one/], [
        `${dir}/empty`,
        /it is empty/,
      ]] as const
    ) {
      if (log.startsWith(dir)) await Deno.writeTextFile(log, "");
      const r = await proctree(["report", log, "--html", `${dir}/page.html`]);
      assertEquals(r.code, 1, r.stderr);
      assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
      assertMatch(r.stderr, new RegExp(`^proctree: report: ${log} holds no proctree watch line`));
      assertMatch(r.stderr, why);
    }
    const made = await Deno.stat(`${dir}/page.html`).then(() => true, () => false);
    assertEquals(made, false, "no page written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  { name: "kernel: run says where its reports went; errors name the user's path", ignore },
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const ok = await proctree(["run", "--no-tree", "--html", `${dir}/p.html`, "--", "true"]);
      assertEquals(ok.code, 0, ok.stderr);
      assertMatch(ok.stderr, new RegExp(`\\nproctree: wrote ${dir}/p\\.html\\n`));
      const bad = await proctree(["run", "-q", "--summary", `${dir}/no/a.json`, "--", "true"]);
      assertEquals(bad.code, 1);
      assertEquals(
        bad.stderr,
        `proctree: cannot create ${dir}/no/a.json: no such file or directory (ENOENT)\n`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  { name: "kernel: --files on a path not there yet says so when listening", ignore },
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const w = await startProctree(["watch", "--files", `${dir}/later`]);
      const { stderr } = await w.stop();
      assertMatch(stderr, /director(y|ies) known; not there yet, watched for: .*\/later\)/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
