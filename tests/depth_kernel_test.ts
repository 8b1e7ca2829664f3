// No escape by depth (issue 17): lineage, run's membership and its summary at any depth.
import { assert, assertEquals } from "@std/assert";
import { compileHelper, noKernel, runWithSummary, sleep, startProctree } from "./kernel.ts";
import { CHAIN_CUT, MAX_CHAIN_ENTRIES } from "../lib/record/record.ts";

const helper = await compileHelper("deep");
const ignore = noKernel !== null || helper === null;
// Past the 4 096 generations where lineage used to stop.
const GENERATIONS = 4200;

/** Waits until no process of the helper is left (the chain takes seconds to unwind). */
async function helperDone(): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const r = await new Deno.Command("pgrep", { args: ["-x", "deep"], stdout: "null" }).output();
    if (!r.success) return;
    await sleep(100);
  }
}

Deno.test(
  { name: "kernel: run follows 4 200 generations and writes its summary", ignore },
  async () => {
    const r = await runWithSummary([
      helper!,
      String(GENERATIONS),
      "/bin/sh",
      "-c",
      "sleep 0.1; exit 7",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const doc = r.doc;
    let depth = 0;
    let leaf = doc.tree;
    while (leaf.children.length) {
      leaf = leaf.children[0];
      depth++;
    }
    assertEquals(depth, GENERATIONS + 1, "every generation and the payload's child");
    assertEquals(leaf.argv, ["sleep", "0.1"]);
    assertEquals(doc.totals.processes, GENERATIONS + 2);
    assertEquals(doc.totals.failed, 1, "the payload's exit 7");
  },
);

Deno.test(
  { name: "kernel: watch --under PID at depth; long chains end with a marker", ignore },
  async () => {
    const holder = new Deno.Command("sh", {
      args: ["-c", `sleep 2; ${helper} ${GENERATIONS} /bin/sleep 0.1`],
    }).spawn();
    const w = await startProctree(["watch", "--events", "exec", "--under", String(holder.pid)]);
    await holder.status;
    await helperDone();
    await sleep(500);
    const { records, code, stderr } = await w.stop();
    assertEquals(code, 0, stderr);
    // Found by its executable and depth: it runs right after a 4 200-fork storm, so proctree
    // may read it late, and then leaves its argv null (README, Guarantees).
    const payload = records.find((r) =>
      r.exe === "/usr/bin/sleep" && String(r.chain).split(";").length > MAX_CHAIN_ENTRIES &&
      (r.argv === null || r.argv?.[1] === "0.1")
    );
    assert(
      payload,
      `the payload's exec, 4 200 generations down, is under the pinned pid; got ${
        JSON.stringify(records.slice(-3)).slice(0, 600)
      } of ${records.length}`,
    );
    const entries = String(payload.chain).split(";");
    assertEquals(entries.length, MAX_CHAIN_ENTRIES + 1);
    assertEquals(entries.at(-1), CHAIN_CUT);
  },
);
