import { assert, assertEquals, assertMatch } from "@std/assert";
import { noKernel, PROCTREE, runWithSummary } from "./kernel.ts";
import type { SubtreeEntry } from "../lib/report/subtree.ts";

const ignore = noKernel !== null;
const decoder = new TextDecoder();

async function proctreeRun(args: string[], stdin?: string) {
  const child = new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "run", ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

function flatten(
  e: SubtreeEntry,
  parent: SubtreeEntry | null = null,
  out: [SubtreeEntry, SubtreeEntry | null][] = [],
) {
  out.push([e, parent]);
  for (const c of e.children) flatten(c, e, out);
  return out;
}

Deno.test(
  { name: "kernel: run records every process with parent, argv and status", ignore },
  async () => {
    const summary = await Deno.makeTempFile({ suffix: ".json" });
    const script = "true; ls / >/dev/null; (sleep 0.1; exit 4) & wait; exit 3";
    const r = await proctreeRun(["-q", "--summary", summary, "--", "sh", "-c", script]);
    assertEquals(r.code, 3, r.stderr);
    const doc = JSON.parse(await Deno.readTextFile(summary));
    await Deno.remove(summary);
    assertEquals(doc.exit_status, 3);
    const all = flatten(doc.tree);
    const root = doc.tree as SubtreeEntry;
    assertEquals(root.argv?.slice(1), ["-c", script]);
    assertEquals(root.exit_code, 3);
    // ls lives about a millisecond: it may be gone before /proc is read. Then its names
    // are null (honest), never another process's.
    const ls = all.find(([e, parent]) => parent === root && e.exit_code === 0);
    assert(ls, "ls was recorded");
    assert(ls[0].comm === "ls" || ls[0].comm === null, `ls comm: ${ls[0].comm}`);
    assert(ls[0].argv === null || ls[0].argv.join(" ") === "ls /", `ls argv: ${ls[0].argv}`);
    const sub = all.find(([e]) => e.exit_code === 4);
    assert(sub, "the subshell that exits 4 was recorded");
    assertEquals(sub[1], root);
    const sleep = sub[0].children.find((c) => c.comm === "sleep");
    assert(sleep, "sleep is the subshell's child");
    assertEquals(sleep.argv, ["sleep", "0.1"]);
    assertEquals(doc.totals.processes, 4);
    assertEquals(doc.totals.failed, 2);
    assertEquals(doc.complete, true);
    assertMatch(r.stderr, /4 processes, 2 exited non-zero, 0 killed/);
  },
);

Deno.test(
  { name: "kernel: a storm of 2000 processes inside run is recorded whole", ignore },
  async () => {
    const summary = await Deno.makeTempFile({ suffix: ".json" });
    const r = await proctreeRun([
      "-q",
      "--no-tree",
      "--summary",
      summary,
      "--",
      "sh",
      "-c",
      "for i in $(seq 2000); do /bin/true; done",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const doc = JSON.parse(await Deno.readTextFile(summary));
    await Deno.remove(summary);
    const children = (doc.tree as SubtreeEntry).children;
    if (doc.totals.lost_events === 0) {
      assertEquals(children.length, 2001, "2000 × true and one seq");
      assert(children.every((c) => c.exit_code === 0));
    } else {
      // Losses are allowed only when stated, and must cover what is missing.
      assert(2001 - children.length <= doc.totals.lost_events);
    }
    for (const c of children) {
      assert(
        c.argv === null || c.argv[0] === "/bin/true" || c.argv[0] === "seq",
        `no wrong names: ${c.argv}`,
      );
    }
  },
);

Deno.test(
  { name: "kernel: run exits 128+N when CMD is killed, passes stdin through", ignore },
  async () => {
    const killed = await proctreeRun(["-q", "--", "sh", "-c", "kill -9 $$"]);
    assertEquals(killed.code, 137);
    assertMatch(killed.stderr, /killed by SIGKILL/);
    const cat = await proctreeRun(["-q", "--no-tree", "--", "cat"], "hi\n");
    assertEquals(cat.code, 0);
    assertEquals(cat.stdout, "hi\n");
  },
);

Deno.test({ name: "kernel: run --json prints the subtree's lines only", ignore }, async () => {
  const r = await proctreeRun(["-q", "--no-tree", "--json", "--", "sh", "-c", "sleep 0.05; true"]);
  assertEquals(r.code, 0);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert(lines.some((l) => l.event === "exec" && l.comm === "sleep"));
  const pids = new Set(lines.filter((l) => l.pid).map((l) => l.pid));
  assertEquals(pids.size, 2, "sh and sleep, nothing else");
});

Deno.test("cli: run without a command is a usage error", async () => {
  const r = await proctreeRun([]);
  assertEquals(r.code, 2);
});

Deno.test(
  { name: "kernel: a root that execs again shows every image it ran", ignore },
  async () => {
    const { code, doc } = await runWithSummary(["bash", "-c", "sleep 0.05; exec sleep 0.2"]);
    assertEquals(code, 0);
    const root = doc.tree;
    // exe comes from fanotify for every exec; argv when /proc was read in time.
    assertEquals(root.exe, "/usr/bin/sleep");
    assertEquals(root.earlier_images?.map((i) => i.exe), ["/usr/bin/bash"]);
    const { entryName } = await import("../lib/report/subtree.ts");
    assertMatch(
      entryName(root),
      // Deno passes the resolved path as argv[0].
      /^((\S*\/)?bash -c "sleep 0\.05; exec sleep 0\.2"|\[bash\]) → (sleep 0\.2|\[sleep\])$/,
    );
  },
);
