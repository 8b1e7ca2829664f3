/**
 * Are `--files` lines replayable? `watch --files W` while a shell loop builds, renames and
 * removes trees under W (issue 27's rename races: `mkdir -p a/b/c/d/e`, `mv a z`,
 * `rm -rf z/b/c`, atomic replaces), then every `create`, `delete` and `rename` line applied
 * in order to an empty set, and the result compared with what is under W at the end.
 * Counts the operations the replay found impossible (a delete of what is not there, a
 * create of what is), the entries the replay and the disk disagree on, and `merged` and
 * `lost` lines. Needs root.
 *
 *   deno run -A scripts/files_replay.ts [--workload rename|tar|git] [--rounds 100] [--runs 3] [--busy]
 *
 * `--busy`: two `sh -c 'while :; do :; done'` loops run meanwhile. `--workload tar`: the
 * repository's working tree through `tar`; `git`: a local `git clone` of it.
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { PROCTREE } from "./command.ts";
import { replayFiles } from "../lib/file_replay.ts";

const repo = new URL("..", import.meta.url).pathname;

/**
 * The rename loop of issue 27 under `w`, `rounds` rounds, as one shell command: trees built,
 * renamed, pruned, moved through another directory, files replaced atomically.
 */
export function renameLoop(w: string, rounds: number): string {
  return `cd ${w} && for i in $(seq ${rounds}); do
    mkdir -p a$i/b/c/d/e && echo x > a$i/b/c/d/e/f && touch a$i/b/g
    mv a$i z$i && rm -rf z$i/b/c
    echo y > z$i/tmp && mv z$i/tmp z$i/conf && echo w > z$i/tmp && mv z$i/tmp z$i/conf
    mkdir -p q && mv z$i q/ && mv q/z$i r$i
    [ $((i % 3)) = 0 ] && rm -rf r$i
  done; true`;
}

/** The workload `kind` under `w`, as one shell command. */
function workload(kind: string, w: string, rounds: number): string {
  // A tar of the repository's working tree (no .git), extracted; a local clone with history.
  if (kind === "tar") return `tar -C ${repo} --exclude=.git -cf - . | tar -C ${w} -xf -`;
  if (kind === "git") return `git clone -q ${repo} ${w}/clone`;
  return renameLoop(w, rounds);
}

async function onDisk(w: string): Promise<Set<string>> {
  const r = await new Deno.Command("find", { args: [w, "-mindepth", "1"], stdout: "piped" })
    .output();
  return new Set(new TextDecoder().decode(r.stdout).split("\n").filter(Boolean));
}

async function once(kind: string, rounds: number): Promise<string> {
  const w = await Deno.makeTempDir({ prefix: "proctree-replay-" });
  const p = new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "watch", "--files", w, "--events", "exec"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = new Response(p.stdout).text();
  const reader = p.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let err = "";
  while (!err.includes("listening")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`proctree did not start: ${err}`);
    err += value;
  }
  await new Deno.Command("sh", { args: ["-c", workload(kind, w, rounds)] }).output();
  await new Promise((r) => setTimeout(r, 1500));
  p.kill("SIGINT");
  await p.status;
  reader.releaseLock();
  const lines = (await out).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const { impossible, paths: set } = replayFiles(lines, w);
  const disk = await onDisk(w);
  const missing = [...disk].filter((x) => !set.has(x)).length;
  const extra = [...set].filter((x) => !disk.has(x)).length;
  const merged = lines.filter((l) => l.merged).length;
  const lost = lines.filter((l) => l.event === "lost").length;
  const files = lines.filter((l) => l.event === "file").length;
  await Deno.remove(w, { recursive: true });
  return `${files} file lines: ${impossible} impossible, ${missing} missing, ${extra} extra, ` +
    `${merged} merged, ${lost} lost`;
}

if (import.meta.main) {
  const args = parseArgs(Deno.args, {
    string: ["rounds", "runs", "workload"],
    boolean: ["busy"],
  });
  const rounds = Number(args.rounds ?? 100);
  const runs = Number(args.runs ?? 3);
  const busy = args.busy
    ? [1, 2].map(() => new Deno.Command("sh", { args: ["-c", "while :; do :; done"] }).spawn())
    : [];
  try {
    for (let i = 0; i < runs; i++) {
      console.log(`run ${i + 1}: ${await once(args.workload ?? "rename", rounds)}`);
    }
  } finally {
    for (const b of busy) b.kill("SIGKILL");
  }
}
