/**
 * Storm benchmark: proctree side by side with forkstat and extrace on the same process
 * storms, each tool's output matched against the storm's ground truth.
 *
 *   deno run -A scripts/bench_storm.ts [--runs 3] [--install-peers] [--tools a,b] [--storms 1,2]
 *                                      [--scale 1] [--markdown FILE] [--json FILE] [--update FILE]
 *
 * `deno task bench:storm` runs everything and rewrites the table in BENCHMARKS.md.
 *
 * For every storm and tool: start the tool writing to a file, wait until it is ready, run
 * the storm (scripts/storm/storm.c, compiled with cc), wait until the output stops growing,
 * read the tool's CPU time and peak RSS from /proc, stop it, and match its lines to the
 * truth. Busy-host storms keep both CPUs at 100 % with two shell loops meanwhile. pid_max
 * is raised for the whole run (and restored), so no pid repeats within a storm and no other
 * process on the machine can be taken for a storm child. Medians of the runs. Needs root
 * (the connector, pid_max, and apt-get for --install-peers).
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { PROCTREE } from "./command.ts";
import { buildSharedStorm, SHARED_STORM } from "./storm/shared.ts";
import { COMM_BYTES } from "../lib/source/bpf_exec/program.ts";

const here = new URL(".", import.meta.url).pathname;
const work = Deno.makeTempDirSync({ prefix: "proctree-bench-" });

interface Storm {
  name: string;
  mode: "fork-exec" | "vfork-exec" | "fork";
  n: number;
  workers: number;
  target: "tiny" | "/bin/true";
  /** Two busy loops keep every CPU at 100 % while the storm runs. */
  busy?: boolean;
  /**
   * `../shared/storm`'s `stormgen` instead of `scripts/storm/storm.c`: several times faster
   * (fast enough to overflow a socket); it lists children without their worker, so the
   * parent is not scored.
   */
  fast?: boolean;
}

const STORMS: Storm[] = [
  { name: "10k fork+exec, 2 workers", mode: "fork-exec", n: 10_000, workers: 2, target: "tiny" },
  { name: "50k vfork+exec, 8 workers", mode: "vfork-exec", n: 50_000, workers: 8, target: "tiny" },
  {
    name: "10k /bin/true, 2 workers",
    mode: "fork-exec",
    n: 10_000,
    workers: 2,
    target: "/bin/true",
  },
  { name: "50k fork only, 8 workers", mode: "fork", n: 50_000, workers: 8, target: "tiny" },
  {
    name: "50k vfork+exec, 8 workers, busy host",
    mode: "vfork-exec",
    n: 50_000,
    workers: 8,
    target: "tiny",
    busy: true,
  },
  {
    name: "50k vfork+exec, 8 workers, fast",
    mode: "vfork-exec",
    n: 50_000,
    workers: 8,
    target: "tiny",
    fast: true,
  },
  {
    name: "50k vfork+exec, 8 workers, fast, busy host",
    mode: "vfork-exec",
    n: 50_000,
    workers: 8,
    target: "tiny",
    busy: true,
    fast: true,
  },
];

/** pid_max during the benchmark: far more pids than any storm makes. */
const BENCH_PID_MAX = 4_194_304;

/** A program named in an exec line (null: the line named none). */
interface ExecSeen {
  /** The executable's basename. */
  exe: string | null;
  /** argv as the line gave it, every element. */
  argv: string[] | null;
  /** The task's comm (null too for a tool that does not print one). */
  comm: string | null;
}

/** What a tool reported, per child pid (as multisets). */
interface Observed {
  forks: Map<number, number[]>; // child pid → parents reported
  execs: Map<number, ExecSeen[]>; // pid → what each exec line named
  exits: Map<number, number>; // pid → count
  lostCounted: number | null; // null: the tool cannot tell
}

interface Tool {
  name: string;
  available(): boolean;
  cmd(out: string): string[];
  /** Text on stderr (or a delay) that says the tool is listening. */
  ready: string | null;
  parse(text: string): Observed;
}

function emptyObserved(lost: number | null): Observed {
  return { forks: new Map(), execs: new Map(), exits: new Map(), lostCounted: lost };
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V) {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}

const basename = (s: string) => s.slice(s.lastIndexOf("/") + 1);

const PROCTREE_WATCH = [...PROCTREE, "watch"];

/** A tool of the list by name; any other `proctree --flag value…` is proctree with those flags. */
function toolNamed(name: string): Tool {
  const known = TOOLS.find((t) => t.name === name);
  if (known) return known;
  const [first, ...flags] = name.split(" ");
  if (first !== "proctree") throw new Error(`bench_storm: no tool ${name}`);
  return { ...TOOLS[0], name, cmd: () => [...PROCTREE_WATCH, ...flags] };
}

const TOOLS: Tool[] = [
  {
    name: "proctree",
    available: () => true,
    cmd: () => PROCTREE_WATCH,
    ready: "proctree: listening",
    parse(text) {
      const o = emptyObserved(0);
      for (const line of text.split("\n")) {
        if (!line) continue;
        const r = JSON.parse(line);
        if (r.event === "fork") push(o.forks, r.pid, r.ppid);
        else if (r.event === "exec") {
          push(o.execs, r.pid, {
            exe: r.exe ? basename(r.exe) : null,
            argv: r.argv ?? null,
            comm: r.comm ?? null,
          });
        } else if (r.event === "exit") o.exits.set(r.pid, (o.exits.get(r.pid) ?? 0) + 1);
        else if (r.event === "lost") o.lostCounted! += r.count ?? 1;
      }
      return o;
    },
  },
  {
    name: "proctree --realtime",
    available: () => true,
    cmd: () => [...PROCTREE_WATCH, "--realtime"],
    ready: "proctree: listening",
    parse: (text) => TOOLS[0].parse(text),
  },
  {
    // Installs an audit rule for the run (removed when it stops): argv from the audit stream.
    name: "proctree --argv audit",
    available: () => true,
    cmd: () => [...PROCTREE_WATCH, "--argv", "audit"],
    ready: "proctree: listening",
    parse: (text) => TOOLS[0].parse(text),
  },
  {
    name: "proctree --rcvbuf 256M",
    available: () => true,
    cmd: () => [...PROCTREE_WATCH, "--rcvbuf", "256M"],
    ready: "proctree: listening",
    parse: (text) => TOOLS[0].parse(text),
  },
  {
    // Exec facts from /proc only (the default before the BPF source, and without root).
    name: "proctree --exec-facts proc",
    available: () => true,
    cmd: () => [...PROCTREE_WATCH, "--exec-facts", "proc"],
    ready: "proctree: listening",
    parse: (text) => TOOLS[0].parse(text),
  },
  {
    name: "proctree --exec-names proc",
    available: () => true,
    cmd: () => [...PROCTREE_WATCH, "--exec-names", "proc"],
    ready: "proctree: listening",
    parse: (text) => TOOLS[0].parse(text),
  },
  {
    name: "forkstat",
    available: () => which("forkstat"),
    cmd: () => ["forkstat", "-e", "fork,exec,exit", "-l"],
    ready: null,
    parse(text) {
      const o = emptyObserved(null);
      let parent: number | null = null;
      for (const line of text.split("\n")) {
        // "03:15:43 fork   2007 child           sh -c …" / "exec   2007   cmd" / "exit 2008  0  0.201s cmd"
        const m = /^\S+\s+(fork|exec|exit)\s+(\d+)\s+(\S+)?\s*(.*)$/.exec(line);
        if (!m) continue;
        const pid = Number(m[2]);
        if (m[1] === "fork") {
          if (m[3] === "parent") parent = pid;
          else if (m[3] === "child") {
            push(o.forks, pid, parent ?? -1);
            parent = null;
          }
        } else if (m[1] === "exec") {
          // forkstat prints the command line: argv.
          const cmdline = `${m[3] ?? ""} ${m[4]}`.trim();
          push(o.execs, pid, { exe: null, argv: cmdline ? cmdline.split(" ") : null, comm: null });
        } else o.exits.set(pid, (o.exits.get(pid) ?? 0) + 1);
      }
      return o;
    },
  },
  {
    name: "extrace",
    available: () => which("extrace"),
    cmd: () => ["extrace", "-f", "-t", "-q", "-l"],
    ready: null,
    parse(text) {
      const o = emptyObserved(null);
      for (const line of text.split("\n")) {
        const e = /^\s*(\d+)\+ (\S+)/.exec(line);
        // With -l extrace prints the executable's path (from /proc/<pid>/exe).
        if (e) push(o.execs, Number(e[1]), { exe: basename(e[2]), argv: null, comm: null });
        const x = /^\s*(\d+)- /.exec(line);
        if (x) o.exits.set(Number(x[1]), (o.exits.get(Number(x[1])) ?? 0) + 1);
      }
      o.forks = new Map(); // extrace does not report forks
      return o;
    },
  },
];

function which(cmd: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

function sh(script: string): void {
  const r = new Deno.Command("sh", { args: ["-c", script], stdout: "inherit", stderr: "inherit" })
    .outputSync();
  if (!r.success) throw new Error(`failed: ${script}`);
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

function procStat(pid: number): { cpuS: number; hwmKb: number } {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    throw new Error(`the tool (pid ${pid}) died during the storm`);
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuS: ticks / 100, hwmKb: hwm };
}

interface Truth {
  children: Map<number, number[]>; // pid → worker pids (multiset)
  n: number;
}

function readTruth(path: string): Truth {
  const children = new Map<number, number[]>();
  let n = 0;
  for (const line of Deno.readTextFileSync(path).split("\n")) {
    const m = /^(\d+) (\d+)$/.exec(line);
    if (!m) continue;
    push(children, Number(m[1]), Number(m[2]));
    n++;
  }
  return { children, n };
}

interface Score {
  forks: number | null;
  rightParent: number | null;
  execs: number | null;
  /** Execs whose executable was named right. */
  rightExe: number | null;
  /** Execs whose argv was the storm's, element for element. */
  rightArgv: number | null;
  /** Execs whose comm was the program's (null: the tool prints none). */
  rightComm: number | null;
  /** Execs that named a program, and the wrong one (null names are not counted). */
  wrongName: number | null;
  exits: number;
  lostCounted: number | null;
  missing: number;
  cpuS: number;
  cpuUsPerEvent: number;
  /** CPU per event the tool did report (a tool that drops events saves their cost). */
  cpuUsPerReported: number;
  peakRssMb: number;
}

function score(
  truth: Truth,
  o: Observed,
  storm: Storm,
  targetPath: string,
  cpuS: number,
  hwmKb: number,
  tool: string,
): Score {
  const target = basename(targetPath);
  const comm = target.slice(0, COMM_BYTES - 1); // the kernel's comm: the name's first bytes
  // Every child runs `execv(targetPath, [targetPath])`.
  const exactArgv = (a: string[] | null) => a?.length === 1 && a[0] === targetPath;
  let forks = 0, rightParent = 0, execs = 0, rightExe = 0, rightArgv = 0, wrongName = 0;
  let rightComm = 0;
  let exits = 0;
  const hasExec = storm.mode !== "fork";
  for (const [pid, workers] of truth.children) {
    const k = workers.length;
    const parents = o.forks.get(pid) ?? [];
    forks += Math.min(k, parents.length);
    const pool = [...parents];
    for (const w of workers) {
      const i = pool.indexOf(w);
      if (i >= 0) {
        rightParent++;
        pool.splice(i, 1);
      }
    }
    if (hasExec) {
      const seen = o.execs.get(pid) ?? [];
      execs += Math.min(k, seen.length);
      rightExe += Math.min(k, seen.filter((e) => e.exe === target).length);
      rightArgv += Math.min(k, seen.filter((e) => exactArgv(e.argv)).length);
      rightComm += Math.min(k, seen.filter((e) => e.comm === comm).length);
      const wrong = (n: string | null) => n !== null && n !== "" && n !== target;
      const argv0 = (e: ExecSeen) => e.argv?.length ? basename(e.argv[0]) : null;
      wrongName += seen.filter((e) => wrong(e.exe) || wrong(argv0(e))).length;
    }
    exits += Math.min(k, o.exits.get(pid) ?? 0);
  }
  const n = truth.n;
  const expected = n * (hasExec ? 3 : 2);
  const seen = forks + (hasExec ? execs : 0) + exits;
  const noForks = tool === "extrace";
  const events = expected;
  return {
    forks: noForks ? null : forks / n,
    rightParent: noForks || storm.fast ? null : rightParent / n,
    execs: hasExec ? execs / n : null,
    rightExe: hasExec && tool !== "forkstat" ? rightExe / n : null,
    rightArgv: hasExec && tool !== "extrace" ? rightArgv / n : null,
    rightComm: hasExec && tool.startsWith("proctree") ? rightComm / n : null,
    wrongName: hasExec ? wrongName : null,
    exits: exits / n,
    lostCounted: o.lostCounted,
    missing: noForks ? expected - n - seen : expected - seen,
    cpuS,
    cpuUsPerEvent: (cpuS * 1e6) / events,
    cpuUsPerReported: (cpuS * 1e6) / Math.max(1, seen),
    peakRssMb: hwmKb / 1024,
  };
}

async function runOnce(tool: Tool, storm: Storm, storm_bin: string, tiny: string): Promise<Score> {
  const out = `${work}/out.txt`;
  const truthPath = `${work}/truth.txt`;
  const errPath = `${work}/err.txt`;
  // Stale files from the previous run would look like a ready tool.
  for (const p of [out, errPath]) {
    try {
      Deno.removeSync(p);
    } catch { /* first run */ }
  }
  // The tool writes straight to files (through `exec` its pid stays the child's): a pipe
  // read by this script would stall the tool whenever this script is busy.
  const child = new Deno.Command("sh", {
    args: ["-c", `exec "$@" > ${out} 2> ${errPath}`, "sh", ...tool.cmd(out)],
    stdin: "null",
  }).spawn();
  const err = () => {
    try {
      return Deno.readTextFileSync(errPath);
    } catch {
      return "";
    }
  };
  if (tool.ready) {
    for (let i = 0; i < 300 && !err().includes(tool.ready); i++) await sleep(50);
    if (!err().includes(tool.ready)) throw new Error(`${tool.name} did not start: ${err()}`);
  } else await sleep(1500);
  // CPU from here on: the storm's, not start-up's.
  const atReady = procStat(child.pid);
  const target = storm.fast
    ? `${work}/zzstorm_true`
    : storm.target === "tiny"
    ? tiny
    : storm.target;
  const busy = storm.busy
    ? [0, 1].map(() => new Deno.Command("sh", { args: ["-c", "while :; do :; done"] }).spawn())
    : [];
  try {
    if (storm.fast) {
      const pids = `${work}/pids.txt`;
      const ran = await new Deno.Command(`${work}/stormgen`, {
        args: [
          "-n",
          String(storm.n),
          "-j",
          String(storm.workers),
          "-m",
          storm.mode.split("-")[0],
          "-e",
          target,
          "-p",
          pids,
        ],
        stdout: "null",
      }).output();
      if (!ran.success) throw new Error(`stormgen failed: ${new TextDecoder().decode(ran.stderr)}`);
      // "c PID" per child: the truth, each child under an unknown worker (0).
      const children = Deno.readTextFileSync(pids).split("\n").filter((l) => l.startsWith("c "));
      Deno.writeTextFileSync(truthPath, children.map((l) => `${l.slice(2)} 0`).join("\n") + "\n");
    } else {
      const ran = await new Deno.Command(storm_bin, {
        args: [storm.mode, String(storm.n), String(storm.workers), target, truthPath],
      }).output();
      if (!ran.success) throw new Error(`storm failed: ${new TextDecoder().decode(ran.stderr)}`);
    }
    // Wait until the output stops growing for a second (at most 120 s).
    let last = -1;
    for (let i = 0; i < 120; i++) {
      await sleep(1000);
      const size = Deno.statSync(out).size;
      if (size === last) break;
      last = size;
    }
  } finally {
    for (const b of busy) b.kill("SIGKILL");
    await Promise.all(busy.map((b) => b.status));
  }
  const end = procStat(child.pid);
  const cpuS = end.cpuS - atReady.cpuS;
  const hwmKb = end.hwmKb;
  child.kill("SIGINT");
  await child.status;
  const truth = readTruth(truthPath);
  const o = tool.parse(Deno.readTextFileSync(out));
  return score(truth, o, storm, target, cpuS, hwmKb, tool.name);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function medianScore(scores: Score[]): Score {
  const m = (k: keyof Score) => {
    const v = scores.map((s) => s[k]);
    return v.some((x) => x === null) ? null : median(v as number[]);
  };
  return {
    forks: m("forks"),
    rightParent: m("rightParent"),
    execs: m("execs"),
    rightExe: m("rightExe"),
    rightArgv: m("rightArgv"),
    rightComm: m("rightComm"),
    wrongName: m("wrongName"),
    exits: m("exits")!,
    lostCounted: m("lostCounted"),
    missing: m("missing")!,
    cpuS: m("cpuS")!,
    cpuUsPerEvent: m("cpuUsPerEvent")!,
    cpuUsPerReported: m("cpuUsPerReported")!,
    peakRssMb: m("peakRssMb")!,
  };
}

const pct = (x: number | null) => (x === null ? "–" : `${(x * 100).toFixed(1)} %`);

function table(results: { storm: Storm; tool: string; s: Score }[]): string {
  const lines = [
    "| storm | tool | forks | right parent | execs | right exe | right argv | right comm | wrong names | exits | lost counted | actually missing | CPU s | CPU µs/event | CPU µs/reported event | peak RSS MB |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const { storm, tool, s } of results) {
    lines.push(
      `| ${storm.name} | ${tool} | ${pct(s.forks)} | ${pct(s.rightParent)} | ${pct(s.execs)} | ${
        pct(s.rightExe)
      } | ${pct(s.rightArgv)} | ${pct(s.rightComm)} | ${s.wrongName ?? "–"} | ${pct(s.exits)} | ${
        s.lostCounted ?? "–"
      } | ${s.missing} | ${s.cpuS.toFixed(2)} | ${s.cpuUsPerEvent.toFixed(2)} | ${
        s.cpuUsPerReported.toFixed(2)
      } | ${s.peakRssMb.toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const f = parseArgs(Deno.args, {
    string: ["runs", "tools", "storms", "scale", "markdown", "json", "update"],
    boolean: ["install-peers", "help", "keep"],
    default: { runs: "3", scale: "1" },
  });
  if (f.help) {
    console.log(
      "usage: bench_storm.ts [--runs 3] [--install-peers] [--tools a,b] [--storms 1,2] [--scale 1] [--markdown FILE] [--json FILE]",
    );
    Deno.exit(0);
  }
  if (f["install-peers"] && (!which("forkstat") || !which("extrace"))) {
    sh(
      "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq forkstat extrace >/dev/null",
    );
  }
  const stormBin = `${work}/storm`;
  const tiny = `${work}/tinybin`;
  sh(`cc -O2 -o ${stormBin} ${here}storm/storm.c && cc -static -O2 -o ${tiny} ${here}storm/tiny.c`);
  buildSharedStorm(work);
  const scale = Number(f.scale);
  const storms = STORMS.filter((_, i) => !f.storms || f.storms.split(",").includes(String(i + 1)))
    .filter((s) => !s.fast || SHARED_STORM !== undefined)
    .map((s) => ({ ...s, n: Math.max(1, Math.round(s.n * scale)) }));
  const tools = f.tools
    ? String(f.tools).split(",").map(toolNamed).filter((t: Tool) => t.available())
    : TOOLS.filter((t) => t.available());
  const results: { storm: Storm; tool: string; s: Score }[] = [];
  const pidMaxPath = "/proc/sys/kernel/pid_max";
  const pidMax = Deno.readTextFileSync(pidMaxPath).trim();
  const restore = () => Deno.writeTextFileSync(pidMaxPath, pidMax);
  Deno.addSignalListener("SIGINT", () => {
    restore();
    Deno.exit(130);
  });
  Deno.writeTextFileSync(pidMaxPath, String(BENCH_PID_MAX));
  try {
    for (const storm of storms) {
      // Runs interleave the tools (run 1 of each, then run 2…): a machine that slows down
      // for a while then weighs on every tool alike.
      const scores: Score[][] = tools.map(() => []);
      for (let r = 0; r < Number(f.runs); r++) {
        for (const [t, tool] of tools.entries()) {
          const one = await runOnce(tool, storm, stormBin, tiny);
          console.error(
            `  ${storm.name} · ${tool.name} · run ${r + 1}: missing ${one.missing}, ` +
              `lost counted ${one.lostCounted}, right exe ${pct(one.rightExe)}, argv ${
                pct(one.rightArgv)
              }, comm ${pct(one.rightComm)}, CPU ${one.cpuUsPerEvent.toFixed(1)} µs/event ` +
              `(${one.cpuUsPerReported.toFixed(1)} per event reported), ` +
              `peak RSS ${one.peakRssMb.toFixed(1)} MB`,
          );
          scores[t].push(one);
        }
      }
      for (const [t, tool] of tools.entries()) {
        const s = medianScore(scores[t]);
        results.push({ storm, tool: tool.name, s });
        console.error(`${storm.name} · ${tool.name}: ${JSON.stringify(s)}`);
      }
    }
  } finally {
    restore();
  }
  const md = table(results);
  console.log(md);
  if (f.markdown) Deno.writeTextFileSync(f.markdown, md + "\n");
  if (f.update) {
    // Replace the table between the markers, keeping the rest of the document.
    const doc = Deno.readTextFileSync(f.update);
    const begin = "<!-- storm:begin -->", end = "<!-- storm:end -->";
    const i = doc.indexOf(begin), j = doc.indexOf(end);
    if (i < 0 || j < i) throw new Error(`${f.update}: no ${begin} … ${end} section`);
    const stamp =
      `Measured ${new Date().toISOString().slice(0, 10)}, ${f.runs} runs each (medians), ` +
      `kernel ${Deno.osRelease()}, ${navigator.hardwareConcurrency} CPUs.`;
    Deno.writeTextFileSync(
      f.update,
      `${doc.slice(0, i + begin.length)}\n${stamp}\n\n${md}\n${doc.slice(j)}`,
    );
    // The table is written as `deno fmt` would, so `deno task check` stays clean.
    sh(`"${Deno.execPath()}" fmt --quiet "${f.update}"`);
  }
  if (f.json) Deno.writeTextFileSync(f.json, JSON.stringify(results, null, 2) + "\n");
  if (f.keep) console.error(`kept ${work}`);
  else Deno.removeSync(work, { recursive: true });
}
