/**
 * Are `--files` lines replayable? `watch --files W` while a shell loop builds, renames and
 * removes trees under W (issue 27's rename races: `mkdir -p a/b/c/d/e`, `mv a z`,
 * `rm -rf z/b/c`, trees moved in from outside W and out again, atomic replaces), then every
 * `create`, `delete`, `rename` and `found` line applied in order to an empty set, and the
 * result compared with what is under W at the end. Counts the operations the replay found
 * impossible (a delete of what is not there, a create of what is), the entries the replay
 * and the disk disagree on, changes below a moved-in directory its `found` lines had told
 * (`raced`), and `merged` and `lost` lines. Needs root.
 *
 *   deno run -A scripts/files_replay.ts [--workload rename|tar|git|replace] [--rounds 100]
 *     [--runs 3] [--busy]
 *
 * `--busy`: two `sh -c 'while :; do :; done'` loops run meanwhile. `--workload tar`: the
 * repository's working tree through `tar`; `git`: a local `git clone` of it; `replace`:
 * `--rounds` atomic replaces of one file (written beside it, renamed over it), 200 by
 * default.
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { PROCTREE } from "./command.ts";
import { replayFiles } from "../lib/source/files/replay.ts";

const repo = new URL("..", import.meta.url).pathname;

/**
 * The rename loop of issue 27 under `w`, `rounds` rounds, as one shell command: trees built,
 * renamed, pruned, moved through another directory, files replaced atomically; trees built
 * in `outside` (a directory on the same filesystem, not under `w`) moved in and changed at
 * once, and every fourth moved out again.
 */
export function renameLoop(w: string, rounds: number, outside: string): string {
  return `cd ${w} && for i in $(seq ${rounds}); do
    mkdir -p a$i/b/c/d/e && echo x > a$i/b/c/d/e/f && touch a$i/b/g
    mv a$i z$i && rm -rf z$i/b/c
    echo y > z$i/tmp && mv z$i/tmp z$i/conf && echo w > z$i/tmp && mv z$i/tmp z$i/conf
    mkdir -p q && mv z$i q/ && mv q/z$i r$i
    [ $((i % 3)) = 0 ] && rm -rf r$i
    mkdir -p ${outside}/in$i/x/y && touch ${outside}/in$i/x/f ${outside}/in$i/x/y/g
    mv ${outside}/in$i m$i && touch m$i/x/h && rm m$i/x/f && mv m$i/x/y m$i/y
    [ $((i % 4)) = 0 ] && mv m$i ${outside}/out$i
  done; true`;
}

/** `rounds` atomic replaces of one file under `w`: written beside it, renamed over it. */
function replaceLoop(w: string, rounds: number): string {
  return `cd ${w} && for i in $(seq ${rounds}); do
    echo $i > .conf.tmp && mv .conf.tmp conf
  done; true`;
}

/** The workload `kind` under `w` (`outside`: a directory beside it), as one shell command. */
function workload(kind: string, w: string, rounds: number, outside: string): string {
  // A tar of the repository's working tree (no .git), extracted; a local clone with history.
  if (kind === "tar") return `tar -C ${repo} --exclude=.git -cf - . | tar -C ${w} -xf -`;
  if (kind === "git") return `git clone -q ${repo} ${w}/clone`;
  if (kind === "replace") return replaceLoop(w, rounds);
  return renameLoop(w, rounds, outside);
}

async function onDisk(w: string): Promise<Set<string>> {
  const r = await new Deno.Command("find", { args: [w, "-mindepth", "1"], stdout: "piped" })
    .output();
  return new Set(new TextDecoder().decode(r.stdout).split("\n").filter(Boolean));
}

async function once(kind: string, rounds: number): Promise<string> {
  const w = await Deno.makeTempDir({ prefix: "proctree-replay-" });
  const outside = await Deno.makeTempDir({ prefix: "proctree-outside-" });
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
  await new Deno.Command("sh", { args: ["-c", workload(kind, w, rounds, outside)] }).output();
  await new Promise((r) => setTimeout(r, 1500));
  p.kill("SIGINT");
  await p.status;
  reader.releaseLock();
  const lines = (await out).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const { impossible, paths: set, raced, cut } = replayFiles(lines, w);
  const disk = await onDisk(w);
  const missing = [...disk].filter((x) => !set.has(x)).length;
  const extra = [...set].filter((x) => !disk.has(x)).length;
  const merged = lines.filter((l) => l.merged).length;
  const lost = lines.filter((l) => l.event === "lost").length;
  const files = lines.filter((l) => l.event === "file").length;
  const found = lines.filter((l) => l.action === "found").length;
  let kept = "";
  if (impossible || missing || extra) {
    // Kept for a look: the lines, and what the disk and the replay disagree on.
    kept = await Deno.makeTempFile({ prefix: "proctree-replay-", suffix: ".jsonl" });
    await Deno.writeTextFile(kept, (await out).trimEnd() + "\n");
    const differ = [...disk].filter((x) => !set.has(x)).concat(
      [...set].filter((x) => !disk.has(x)),
    );
    kept = ` (lines kept in ${kept}; differ: ${differ.slice(0, 4).join(" ")})`;
  }
  await Deno.remove(w, { recursive: true });
  await Deno.remove(outside, { recursive: true });
  return `${files} file lines (${found} found): ${impossible} impossible, ${missing} missing, ` +
    `${extra} extra, ${raced} raced, ${cut} cut, ${merged} merged, ${lost} lost${kept}`;
}

if (import.meta.main) {
  const args = parseArgs(Deno.args, {
    string: ["rounds", "runs", "workload"],
    boolean: ["busy"],
  });
  const rounds = Number(args.rounds ?? (args.workload === "replace" ? 200 : 100));
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
