import { assert, assertMatch } from "@std/assert";
import { PROCTREE } from "../scripts/command.ts";
import { writeBigLog } from "../scripts/big_log.ts";
import { readFileText } from "../ffi/procfs.ts";

/** `report`'s peak memory on a log past 1 GB, and the bound README states for it. */
const LOG_MB = 1100;
const MAX_RSS_MB = 700;

/** The process's peak resident set (VmHWM), polled until it exits: the last value read. */
async function peakRssMb(child: Deno.ChildProcess): Promise<number> {
  let peakKb = 0;
  let done = false;
  child.status.then(() => (done = true));
  while (!done) {
    // null once it has ended: the last value read stands.
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileText(`/proc/${child.pid}/status`) ?? "");
    if (m) peakKb = Math.max(peakKb, Number(m[1]));
    await new Promise((r) => setTimeout(r, 20));
  }
  return peakKb / 1024;
}

Deno.test(`report: a ${LOG_MB} MB log of 1.2 M processes in under ${MAX_RSS_MB} MB`, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const processes = await writeBigLog(`${dir}/big.jsonl`, LOG_MB);
    const child = new Deno.Command(PROCTREE[0], {
      args: [...PROCTREE.slice(1), "report", `${dir}/big.jsonl`, "--html", `${dir}/page.html`],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const [peak, out] = await Promise.all([peakRssMb(child), child.output()]);
    const stderr = new TextDecoder().decode(out.stderr);
    assert(out.success, stderr);
    assertMatch(stderr, new RegExp(`20000 processes \\(${processes - 20000} processes left out`));
    console.log(`report: ${processes} processes, peak RSS ${peak.toFixed(0)} MB`);
    assert(peak < MAX_RSS_MB, `peak RSS ${peak.toFixed(0)} MB`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
