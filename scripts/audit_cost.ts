/**
 * What `--argv audit` costs the rest of the host: while its rule exists, the kernel does
 * audit work on system calls of every process (not only on execs).
 *
 *   deno run -A scripts/audit_cost.ts [--runs 3] [--reads 2000000] [--execs 2000]
 *
 * For each condition — no rule (proctree not running), and `proctree watch --argv audit`
 * running — measures, in fresh processes: the mean time of a one-byte `read` (a C loop,
 * scripts/storm/reads.c), and the wall time of a shell loop of `/bin/true` execs. Medians
 * of the runs; prints a Markdown table. Needs root and cc.
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { PROCTREE } from "./command.ts";

const here = new URL(".", import.meta.url).pathname;
const f = parseArgs(Deno.args, {
  string: ["runs", "reads", "execs"],
  default: { runs: "3", reads: "2000000", execs: "2000" },
});
const runs = Number(f.runs), reads = Number(f.reads), execs = Number(f.execs);
const work = Deno.makeTempDirSync({ prefix: "proctree-audit-cost-" });
const bin = `${work}/reads`;
const cc = new Deno.Command("cc", { args: ["-O2", "-o", bin, `${here}storm/reads.c`] })
  .outputSync();
if (!cc.success) throw new Error("cc failed");

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function measure(): { readNs: number; execMs: number } {
  const r = new Deno.Command(bin, { args: [String(reads)], stdout: "piped" }).outputSync();
  const readNs = Number(new TextDecoder().decode(r.stdout).trim());
  const t0 = performance.now();
  new Deno.Command("sh", {
    args: ["-c", `i=0; while [ $i -lt ${execs} ]; do /bin/true; i=$((i+1)); done`],
  }).outputSync();
  return { readNs, execMs: performance.now() - t0 };
}

async function withProctree<T>(fn: () => T): Promise<T> {
  const child = new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "watch", "--argv", "audit", "--events", "exec"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.getReader();
  let err = "";
  while (!err.includes("proctree: listening")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`proctree did not start: ${err}`);
    err += new TextDecoder().decode(value);
  }
  try {
    return fn();
  } finally {
    child.kill("SIGTERM");
    reader.releaseLock();
    await child.stderr.cancel();
    await child.status;
  }
}

const rows: { name: string; readNs: number; execMs: number }[] = [];
for (
  const [name, run] of [
    ["no rule (proctree not running)", () => Promise.resolve(measure())],
    ["`proctree watch --argv audit` running", () => withProctree(measure)],
  ] as const
) {
  const got: { readNs: number; execMs: number }[] = [];
  for (let i = 0; i < runs; i++) got.push(await run());
  rows.push({
    name,
    readNs: median(got.map((g) => g.readNs)),
    execMs: median(got.map((g) => g.execMs)),
  });
}
const base = rows[0];
console.log(`| condition | one-byte read (ns) | ${execs} × /bin/true (ms) |`);
console.log("|---|---:|---:|");
for (const r of rows) {
  const rel = (x: number, b: number) => (r === base ? "" : ` (${(x / b).toFixed(2)}×)`);
  console.log(
    `| ${r.name} | ${r.readNs.toFixed(0)}${rel(r.readNs, base.readNs)} | ` +
      `${r.execMs.toFixed(0)}${rel(r.execMs, base.execMs)} |`,
  );
}
Deno.removeSync(work, { recursive: true });
