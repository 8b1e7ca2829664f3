/**
 * What the BPF exec-facts program costs the exec path: execs/s of a fork+exec storm
 * (`../shared/storm`'s stormgen, built here, or `--storm DIR` with stormgen and zzstorm_true
 * built there) with the program attached and its ring buffer drained every 10 ms, against
 * none attached, alternating, in one run. Needs root.
 *
 *   deno run -A scripts/bpf_exec_cost.ts [--runs 5] [--n 20000] [--workers 2] [--storm DIR]
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { BpfExecSource } from "../ffi/source/bpf_exec.ts";
import { buildSharedStorm } from "./storm/shared.ts";

const f = parseArgs(Deno.args, {
  string: ["runs", "n", "workers", "storm"],
  default: { runs: "5", n: "20000", workers: "2" },
});
const built = f.storm ? null : Deno.makeTempDirSync({ prefix: "proctree-bpf-cost-" });
if (built) {
  f.storm = built;
  if (!buildSharedStorm(built)) {
    console.error("bpf_exec_cost: no ../shared/storm beside the checkout; pass --storm DIR");
    Deno.removeSync(built);
    Deno.exit(2);
  }
}

async function storm(): Promise<number> {
  const out = await new Deno.Command(`${f.storm}/stormgen`, {
    args: ["-n", f.n, "-j", f.workers, "-m", "vfork", "-e", `${f.storm}/zzstorm_true`],
    stdout: "piped",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).procs_per_s;
}

async function attached(): Promise<{ rate: number; records: number }> {
  const src = BpfExecSource.open();
  let records = 0;
  const timer = setInterval(() => src.drain(() => records++), 10);
  try {
    const rate = await storm();
    src.drain(() => records++);
    return { rate, records };
  } finally {
    clearInterval(timer);
    src.close();
  }
}

const without: number[] = [], withProg: number[] = [];
for (let i = 0; i < Number(f.runs); i++) {
  without.push(await storm());
  const a = await attached();
  withProg.push(a.rate);
  console.log(
    `run ${i + 1}: none ${without[i]} execs/s, attached ${a.rate} (${a.records} records)`,
  );
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m0 = median(without), m1 = median(withProg);
console.log(
  `median: none ${m0} execs/s, attached ${m1} execs/s (${((m1 / m0 - 1) * 100).toFixed(1)} %)`,
);
if (built) Deno.removeSync(built, { recursive: true });
