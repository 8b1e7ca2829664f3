/**
 * File-change benchmark: `proctree watch --files DIR` beside Debian's `fatrace` (fanotify,
 * pid attribution) on the same workloads: untar 10 000 files in 100 directories into DIR,
 * then `rm -rf` them.
 *
 *   deno run -A scripts/bench_files.ts [--runs 3] [--files 10000] [--dirs 100]
 *
 * For each workload and tool: start the tool, run the workload, wait until the tool's
 * output stops growing, read its CPU time (utime+stime, from after start-up) and peak RSS
 * from /proc, stop it, and count the changes it reported under DIR. fatrace names the
 * directory of a create or delete, not the file (its FID mode reports `+ DIR`, `D DIR`),
 * and may merge several changes of one directory into one line: its count is of lines.
 * Medians of the runs; prints a Markdown table. Needs root (fanotify) and fatrace.
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { PROCTREE } from "./command.ts";

const f = parseArgs(Deno.args, {
  string: ["runs", "files", "dirs"],
  default: { runs: "3", files: "10000", dirs: "100" },
});
const runs = Number(f.runs), nFiles = Number(f.files), nDirs = Number(f.dirs);
const work = Deno.makeTempDirSync({ prefix: "proctree-bench-files-" });
const dir = `${work}/watched`;
const tarball = `${work}/tree.tar`;

function sh(script: string): void {
  const r = new Deno.Command("sh", { args: ["-c", script] }).outputSync();
  if (!r.success) throw new Error(`failed: ${script}: ${new TextDecoder().decode(r.stderr)}`);
}

function procStat(pid: number): { cpuS: number; hwmKb: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return {
    cpuS: (Number(fields[11]) + Number(fields[12])) / 100,
    hwmKb: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function settle(path: string): Promise<void> {
  let last = -1;
  for (;;) {
    await sleep(500);
    let size = 0;
    try {
      size = Deno.statSync(path).size;
    } catch { /* not written yet (fatrace creates its file itself, and refuses an existing one) */ }
    if (size === last) return;
    last = size;
  }
}

interface Tool {
  name: string;
  cmd(out: string): string[];
  /** Changes of the workload in the tool's output. */
  count(text: string, action: "create" | "delete"): number;
}

const TOOLS: Tool[] = [
  {
    name: "proctree --files",
    cmd: (out) => [...PROCTREE, "watch", "--files", dir, "--events", "exit", "-o", out],
    count(text, action) {
      let n = 0;
      for (const line of text.split("\n")) {
        if (!line.includes('"event":"file"')) continue;
        const r = JSON.parse(line);
        if (r.action === action && r.path.startsWith(`${dir}/t/`)) n++;
      }
      return n;
    },
  },
  {
    name: "fatrace",
    cmd: (out) => ["fatrace", "-c", "-o", out],
    count(text, action) {
      const mark = action === "create" ? "+" : "D";
      let n = 0;
      for (const line of text.split("\n")) {
        const m = /^\S+\(\d+\): (\S+)\s+(.*)$/.exec(line);
        if (m && m[1].includes(mark) && m[2].startsWith(dir)) n++;
      }
      return n;
    },
  },
];

async function once(tool: Tool, workload: "untar" | "rm -rf") {
  const out = `${work}/out.txt`;
  try {
    Deno.removeSync(out);
  } catch { /* first run */ }
  if (workload === "rm -rf") sh(`mkdir -p ${dir} && tar -xf ${tarball} -C ${dir}`);
  else sh(`rm -rf ${dir} && mkdir -p ${dir}`);
  const child = new Deno.Command(tool.cmd(out)[0], {
    args: tool.cmd(out).slice(1),
    cwd: dir,
    stdout: "null",
    stderr: "null",
  }).spawn();
  await sleep(3000); // started and listening (proctree seeds /proc; fatrace marks mounts)
  const before = procStat(child.pid);
  const t0 = performance.now();
  sh(workload === "untar" ? `tar -xf ${tarball} -C ${dir}` : `rm -rf ${dir}/t`);
  const wallMs = performance.now() - t0;
  await settle(out);
  const after = procStat(child.pid);
  child.kill("SIGINT");
  await child.status;
  const text = Deno.readTextFileSync(out);
  return {
    changes: tool.count(text, workload === "untar" ? "create" : "delete"),
    cpuS: after.cpuS - before.cpuS,
    rssMb: after.hwmKb / 1024,
    wallMs,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

sh(
  `mkdir -p ${work}/src/t && cd ${work}/src/t && for d in $(seq ${nDirs}); do mkdir d$d; ` +
    `for f in $(seq ${Math.round(nFiles / nDirs)}); do echo $f > d$d/f$f; done; done && ` +
    `tar -cf ${tarball} -C ${work}/src t`,
);
console.log(
  `| workload | tool | changes reported (${nFiles} files + ${nDirs} directories) | CPU s | ` +
    "peak RSS MB |",
);
console.log("|---|---|---:|---:|---:|");
for (const workload of ["untar", "rm -rf"] as const) {
  for (const tool of TOOLS) {
    const got = [];
    for (let i = 0; i < runs; i++) got.push(await once(tool, workload));
    console.log(
      `| ${workload} | ${tool.name} | ${median(got.map((g) => g.changes))} | ` +
        `${median(got.map((g) => g.cpuS)).toFixed(2)} | ${
          median(got.map((g) => g.rssMb)).toFixed(1)
        } |`,
    );
  }
}
Deno.removeSync(work, { recursive: true });
