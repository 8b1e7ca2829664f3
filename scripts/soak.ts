/**
 * Soak: a million short processes through `proctree watch --under storm`, in ten rounds of
 * 100 000. Prints RSS after the first round and after the last, the most exited processes
 * the tree held, descriptors before and after, and losses.
 *
 *   deno run -A scripts/soak.ts [TOTAL] [ROUNDS]      (default 1000000 10; root)
 *
 * Pass: RSS after the soak within ±10 % of RSS after the first round, the exited count
 * within the cap, no descriptor leaked. Exit status 0 on pass, 1 on fail.
 *
 * @module
 */

import { PROCTREE } from "./command.ts";
import { DEFAULT_MAX_EXITED } from "../lib/tree/tree.ts";

const root = new URL("..", import.meta.url).pathname;
const total = Number(Deno.args[0] ?? 1_000_000);
const rounds = Number(Deno.args[1] ?? 10);
const cap = DEFAULT_MAX_EXITED;
const dir = Deno.makeTempDirSync({ prefix: "proctree-soak-" });
const storm = `${dir}/storm`;
const tiny = `${dir}/tinybin`;
for (
  const args of [
    ["-O2", "-o", storm, `${root}scripts/storm/storm.c`],
    ["-static", "-O2", "-o", tiny, `${root}scripts/storm/tiny.c`],
  ]
) {
  if (!new Deno.Command("cc", { args }).outputSync().success) throw new Error("cc failed");
}

const out = `${dir}/events.jsonl`;
const child = new Deno.Command("sh", {
  args: [
    "-c",
    `exec "$@" > ${out} 2> ${dir}/err`,
    "sh",
    ...PROCTREE,
    "watch",
    "--under",
    "storm",
    "--no-chain",
    "--max-exited",
    String(cap),
    "--grace",
    "5",
    "--stats",
    "5",
  ],
}).spawn();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
for (let i = 0; i < 200 && !Deno.readTextFileSync(`${dir}/err`).includes("listening"); i++) {
  await sleep(50);
}

const status = () => {
  const s = Deno.readTextFileSync(`/proc/${child.pid}/status`);
  return {
    rssKb: Number(/VmRSS:\s+(\d+)/.exec(s)![1]),
    hwmKb: Number(/VmHWM:\s+(\d+)/.exec(s)![1]),
  };
};
const fds = () => [...Deno.readDirSync(`/proc/${child.pid}/fd`)].length;
const fdsBefore = fds();
const rss: number[] = [];
const t0 = performance.now();
for (let r = 0; r < rounds; r++) {
  const ok = new Deno.Command(storm, {
    args: ["fork", String(total / rounds), "4", tiny, `${dir}/truth`],
  }).outputSync();
  if (!ok.success) throw new Error("storm failed");
  await sleep(6000); // past the grace period: exited processes are dropped
  rss.push(status().rssKb);
  console.error(`round ${r + 1}/${rounds}: RSS ${(rss.at(-1)! / 1024).toFixed(1)} MiB`);
}
const fdsAfter = fds();
const seconds = (performance.now() - t0) / 1000;
child.kill("SIGTERM");
await child.status;
let lost = 0, forks = 0, maxExited = 0;
for (const line of Deno.readTextFileSync(out).split("\n")) {
  if (!line) continue;
  const rec = JSON.parse(line);
  if (rec.event === "lost") lost += rec.count ?? 0;
  if (rec.event === "fork") forks++;
  if (rec.event === "stats") maxExited = Math.max(maxExited, rec.tree_exited);
}
Deno.removeSync(dir, { recursive: true });
const drift = (rss.at(-1)! - rss[0]) / rss[0];
const pass = Math.abs(drift) <= 0.1 && fdsAfter === fdsBefore && maxExited <= cap + 64;
console.log(
  `soak: ${total} processes in ${seconds.toFixed(0)} s; RSS after round 1 ${
    (rss[0] / 1024).toFixed(1)
  } MiB, ` +
    `after round ${rounds} ${(rss.at(-1)! / 1024).toFixed(1)} MiB (${
      (drift * 100).toFixed(1)
    } %); ` +
    `forks seen ${forks}, lost ${lost}; most exited held ${maxExited} (cap ${cap}); ` +
    `fds ${fdsBefore} → ${fdsAfter}; ${pass ? "PASS" : "FAIL"}`,
);
Deno.exit(pass ? 0 : 1);
