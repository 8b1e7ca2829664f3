/**
 * What `--net` costs and whether it misses anything, in one run:
 *
 * - 10 000 TCP connects to a local server (a Python client that lists the local port of
 *   each of its connects): the workload's time with no proctree, `proctree watch`, and
 *   `proctree watch --net`; proctree's CPU; and every connect line matched against the
 *   client's own list (address, port, local port).
 * - 2 000 000 one-byte reads and writes (`dd bs=1`): what the `sys_exit` tracepoint costs
 *   every system call of the host, with and without `--net`.
 *
 * Runs alternate (none, watch, watch --net) `--runs` times; medians. Needs root.
 *
 *   deno run -A scripts/net_cost.ts [--runs 3] [--connects 10000]
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { PROCTREE } from "./command.ts";

const f = parseArgs(Deno.args, {
  string: ["runs", "connects"],
  default: { runs: "3", connects: "10000" },
});
const N = Number(f.connects);

const CLIENT = `
import socket, sys, time, json, os
n = int(sys.argv[1])
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
port = s.getsockname()[1]; ports = []
t = time.monotonic()
for i in range(n):
    c = socket.socket(); c.connect(("127.0.0.1", port)); ports.append(c.getsockname()[1])
    a, _ = s.accept(); a.close(); c.close()
print(json.dumps({"pid": os.getpid(), "server": port, "ports": ports, "s": time.monotonic() - t}))
`;

type Mode = "none" | "watch" | "watch --net";

/** proctree's CPU time so far, in s (utime + stime of /proc/PID/stat). */
function cpuS(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function withProctree<T>(
  mode: Mode,
  work: () => Promise<T>,
): Promise<{ result: T; cpuS: number | null; lines: string }> {
  if (mode === "none") return { result: await work(), cpuS: null, lines: "" };
  const args = ["watch", "--events", "exec", ...(mode === "watch --net" ? ["--net"] : [])];
  const child = new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.getReader();
  let err = "";
  while (!err.includes("listening")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`proctree did not start: ${err}`);
    err += new TextDecoder().decode(value);
  }
  let lines = "";
  const drain = (async () => {
    const d = new TextDecoder();
    for await (const c of child.stdout) lines += d.decode(c, { stream: true });
  })();
  const before = cpuS(child.pid);
  const result = await work();
  await new Promise((r) => setTimeout(r, 1000));
  const used = cpuS(child.pid) - before;
  child.kill("SIGINT");
  await child.status;
  await drain;
  reader.releaseLock();
  return { result, cpuS: used, lines };
}

async function connects(): Promise<{ pid: number; server: number; ports: number[]; s: number }> {
  const r = await new Deno.Command("python3", { args: ["-c", CLIENT, String(N)], stdout: "piped" })
    .output();
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

async function dd(): Promise<number> {
  const t = performance.now();
  await new Deno.Command("dd", {
    args: ["if=/dev/zero", "of=/dev/null", "bs=1", "count=2000000"],
    stderr: "null",
  }).output();
  return (performance.now() - t) / 1000;
}

/** Connect lines of the client matched against its own list: [right, wrong, missing]. */
function score(lines: string, c: { pid: number; server: number; ports: number[] }): number[] {
  // A multiset: the kernel reuses a closed connection's local port.
  const want = new Map<number, number>();
  for (const p of c.ports) want.set(p, (want.get(p) ?? 0) + 1);
  const take = (p: number) => {
    const n = want.get(p) ?? 0;
    if (n > 1) want.set(p, n - 1);
    else want.delete(p);
    return n > 0;
  };
  let right = 0, wrong = 0;
  for (const l of lines.split("\n")) {
    if (!l.includes('"event":"connect"')) continue;
    const r = JSON.parse(l);
    if (r.pid !== c.pid) continue;
    const ok = r.address === "127.0.0.1" && r.port === c.server && take(r.local_port) &&
      r.result === "ok" && r.comm === "python3";
    if (ok) right++;
    else wrong++;
  }
  let missing = 0;
  for (const n of want.values()) missing += n;
  return [right, wrong, missing];
}

const MODES: Mode[] = ["none", "watch", "watch --net"];
const rows: Record<Mode, { conn: number[]; cpu: number[]; dd: number[] }> = {
  none: { conn: [], cpu: [], dd: [] },
  watch: { conn: [], cpu: [], dd: [] },
  "watch --net": { conn: [], cpu: [], dd: [] },
};
for (let run = 1; run <= Number(f.runs); run++) {
  for (const mode of MODES) {
    const c = await withProctree(mode, connects);
    const d = await withProctree(mode, dd);
    rows[mode].conn.push(c.result.s);
    if (c.cpuS !== null) rows[mode].cpu.push(c.cpuS);
    rows[mode].dd.push(d.result);
    const matched = mode === "watch --net"
      ? ` lines right/wrong/missing ${score(c.lines, c.result)}`
      : "";
    console.log(
      `run ${run} ${mode}: ${N} connects ${c.result.s.toFixed(2)} s, proctree CPU ${
        c.cpuS?.toFixed(2) ?? "-"
      } s; dd ${d.result.toFixed(2)} s${matched}`,
    );
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log("| tool | 10k connects, s | proctree CPU s (µs per connect) | 2M-syscall dd, s |");
console.log("| --- | ---: | ---: | ---: |");
for (const mode of MODES) {
  const r = rows[mode];
  const cpu = r.cpu.length ? median(r.cpu) : null;
  console.log(
    `| ${mode === "none" ? "no proctree" : `proctree ${mode}`} | ${median(r.conn).toFixed(2)} | ${
      cpu === null ? "–" : `${cpu.toFixed(2)} (${(cpu / N * 1e6).toFixed(0)})`
    } | ${median(r.dd).toFixed(2)} |`,
  );
}
