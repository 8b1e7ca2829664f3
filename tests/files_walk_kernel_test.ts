// --files walks new directories from the event's own handle (issue 27): a name swapped for a
// symlink by an unprivileged user before proctree reads the event leads nowhere, and
// directories deeper than PATH_MAX are named whole. Checked against the paths the test made.
import { assert, assertEquals } from "@std/assert";
import { hasCommand, noKernel, sleep, startProctree } from "./kernel.ts";
import type { WatchRecord } from "../lib/record/record.ts";
import { MAX_WALK_DIRS } from "../ffi/source/files.ts";

const ignore = noKernel !== null || !hasCommand("setpriv");

async function sh(script: string, asNobody = false): Promise<void> {
  const argv = asNobody
    ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script]
    : ["sh", "-c", script];
  const r = await new Deno.Command(argv[0], { args: argv.slice(1), stderr: "piped" }).output();
  assert(r.success, `${script}: ${new TextDecoder().decode(r.stderr)}`);
}

const files = (records: WatchRecord[]) => records.filter((r) => r.event === "file");

for (const where of ["inside", "outside", "/"] as const) {
  Deno.test({
    name: `kernel: --files: a new directory swapped for a symlink (${where}) is not walked`,
    ignore,
  }, async () => {
    const base = await Deno.makeTempDir({ prefix: "proctree-swap-" });
    const w = `${base}/w`;
    const targetDir = where === "inside" ? `${w}/t` : `${base}/out`;
    try {
      await Deno.chmod(base, 0o755);
      await sh(`mkdir -p ${w} ${targetDir}/s && chown 65534 ${w}`);
      const p = await startProctree(["watch", "--files", w]);
      // proctree reads the mkdir's event only after the name is a symlink.
      p.child.kill("SIGSTOP");
      const target = where === "/" ? "/" : targetDir;
      await sh(`cd ${w} && mkdir D && rmdir D && ln -s ${target} D`, true);
      p.child.kill("SIGCONT");
      await sleep(500);
      await sh(`i=0; while [ $i -lt 30 ]; do : > ${targetDir}/s/x$i; i=$((i+1)); done`);
      await sleep(700);
      const { records } = await p.stop();
      const lines = files(records);
      const via = lines.filter((l) => l.path!.startsWith(`${w}/D/`));
      assertEquals(via.map((l) => l.path), [], "a path through the symlink");
      const made = lines.filter((l) => l.action === "create" && /\/s\/x\d+$/.test(l.path!));
      if (where === "inside") {
        assertEquals(made.length, 30);
        assert(made.every((l) => l.path!.startsWith(`${w}/t/s/x`)), JSON.stringify(made[0]));
      } else assertEquals(made, [], "a change outside PATH");
      assertEquals(
        lines.filter((l) => l.path === `${w}/D`).map((l) => l.action),
        ["create", "delete", "create"],
      );
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  });
}

/** A chain of 25 directories of 200 bytes (past PATH_MAX) under `at`; its bash `cd`. */
function deepChain(at: string): { mk: string; cd: string; rel: string } {
  const part = "d".repeat(200);
  const rel = Array(25).fill(part).join("/");
  return {
    mk: `cd ${at} && for i in $(seq 25); do mkdir ${part} && cd ${part}; done`,
    cd: `cd ${at} && for i in $(seq 25); do cd ${part}; done`,
    rel,
  };
}

async function bash(script: string): Promise<void> {
  const r = await new Deno.Command("bash", { args: ["-c", script], stderr: "piped" }).output();
  assert(r.success, new TextDecoder().decode(r.stderr));
}

Deno.test({
  name: "kernel: --files: directories deeper than PATH_MAX, at start and moved in, named whole",
  ignore: noKernel !== null,
}, async () => {
  const base = await Deno.makeTempDir({ prefix: "proctree-deep-" });
  const w = `${base}/w`;
  try {
    await bash(`mkdir ${w} ${base}/out ${w}/pre`);
    const pre = deepChain(`${w}/pre`);
    const out = deepChain(`${base}/out`);
    await bash(`${pre.mk} && ${out.mk}`);
    const p = await startProctree(["watch", "--files", w]);
    // Moved in whole: its walk names every level by handle, never by a path that long.
    await bash(`mv ${base}/out/${"d".repeat(200)} ${w}/in`);
    await bash(`${pre.cd} && : > atstart`);
    await bash(`cd ${w}/in && for i in $(seq 24); do cd ${"d".repeat(200)}; done && : > movedin`);
    await sleep(1000);
    const { records } = await p.stop();
    const created = files(records).filter((l) => l.action === "create" && !l.dir);
    const inRel = out.rel.split("/").slice(1).join("/"); // the moved directory is now `in`
    assertEquals(created.map((l) => l.path).sort(), [
      `${w}/in/${inRel}/movedin`,
      `${w}/pre/${pre.rel}/atstart`,
    ]);
  } finally {
    await new Deno.Command("rm", { args: ["-rf", base] }).output();
  }
});

Deno.test({
  name: "kernel: --files: a walk past its bound stops, counted; what it left is still named",
  ignore: noKernel !== null,
}, async () => {
  const base = await Deno.makeTempDir({ prefix: "proctree-bound-" });
  const w = `${base}/w`;
  const n = MAX_WALK_DIRS + 1; // the moved directory itself is one more
  try {
    await bash(`mkdir -p ${w} ${base}/big && cd ${base}/big && seq ${n} | xargs mkdir`);
    const p = await startProctree(["watch", "--files", w, "--stats", "1"]);
    await bash(`mv ${base}/big ${w}/in && cd ${w}/in && seq ${n} | sed 's|$|/f|' | xargs touch`);
    await sleep(2500);
    const { records } = await p.stop();
    const cut = records.filter((r) => r.event === "stats").map((r) => r.file_walks_cut);
    assertEquals(cut.at(-1), 1);
    const made = new Set(
      files(records).filter((l) => l.action === "create" && !l.dir).map((l) => l.path),
    );
    assertEquals(made.size, n);
    for (let i = 1; i <= n; i++) assert(made.has(`${w}/in/${i}/f`), `${w}/in/${i}/f`);
    // What was moved in is listed up to the walk's bound, and the rename line says so.
    const moved = files(records).find((l) => l.action === "rename" && l.to === `${w}/in`);
    assertEquals(moved?.found_cut, true);
    const found = files(records).filter((l) => l.action === "found" && l.dir).length;
    assert(found >= MAX_WALK_DIRS - 1, `${found} directories found`);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test({
  name: "kernel: --files: mounts under PATH — tmpfs and bind after start watched, overlay said",
  ignore: noKernel !== null || !hasCommand("mount"),
}, async () => {
  const base = await Deno.makeTempDir({ prefix: "proctree-mounts-" });
  const w = `${base}/w`;
  const mounted: string[] = [];
  try {
    await sh(
      `mkdir -p ${w}/ovl ${w}/ovl2 ${base}/lower ${base}/upper ${base}/work ${base}/src/sub`,
    );
    const overlay = (at: string, n: string) =>
      `mkdir -p ${base}/u${n} ${base}/k${n} && mount -t overlay overlay ` +
      `-o lowerdir=${base}/lower,upperdir=${base}/u${n},workdir=${base}/k${n} ${at}`;
    await sh(overlay(`${w}/ovl`, "1"));
    mounted.push(`${w}/ovl`);
    const p = await startProctree(["watch", "--files", w]);
    assert(
      p.stderr().includes(`not watched: ${w}/ovl (overlay: `),
      `the listening line names the overlay: ${p.stderr()}`,
    );
    await sh(`mkdir ${w}/t && mount -t tmpfs tmpfs ${w}/t`);
    mounted.push(`${w}/t`);
    await sh(`mkdir ${w}/b && mount --bind ${base}/src ${w}/b`);
    mounted.push(`${w}/b`);
    await sh(overlay(`${w}/ovl2`, "2"));
    mounted.push(`${w}/ovl2`);
    await sleep(500); // the loop wakes on the mount table's change
    await sh(`touch ${w}/t/x ${w}/b/sub/y`);
    await sleep(700);
    const { records, stderr } = await p.stop();
    const made = files(records).filter((l) => l.action === "create" && !l.dir).map((l) => l.path);
    assertEquals(made.sort(), [`${w}/b/sub/y`, `${w}/t/x`]);
    assert(stderr.includes(`proctree: --files: not watched: ${w}/ovl2 (overlay: `), stderr);
  } finally {
    for (const m of mounted.reverse()) await new Deno.Command("umount", { args: [m] }).output();
    await Deno.remove(base, { recursive: true });
  }
});

/** Unreclaimable kernel slab, in bytes (`/proc/meminfo`). */
async function sUnreclaimBytes(): Promise<number> {
  const m = await new Deno.Command("grep", { args: ["SUnreclaim", "/proc/meminfo"] }).output();
  const text = new TextDecoder().decode(m.stdout);
  return Number(/(\d+)/.exec(text)![1]) * 1024;
}

Deno.test({
  name:
    "kernel: --files: a flood outside PATH while stopped is bounded, said, and paths stay right",
  ignore: noKernel !== null || !hasCommand("python3"),
}, async () => {
  const base = await Deno.makeTempDir({ prefix: "proctree-flood-" });
  const w = `${base}/w`;
  try {
    await bash(`mkdir -p ${w}/a ${base}/out`);
    const p = await startProctree(["watch", "--files", w, "--events", "exec"]);
    p.child.kill("SIGSTOP");
    const before = await sUnreclaimBytes();
    // 600 000 creates and unlinks on PATH's filesystem, outside PATH (about 126 MB queued
    // without a bound; FILES_QUEUE_EVENTS holds ~55 MB); then a rename inside PATH that the
    // full queue drops.
    await bash(`python3 -c "
import os
for i in range(600000):
    p = '${base}/out/f%d' % i
    open(p, 'w').close(); os.unlink(p)
" && mv ${w}/a ${w}/z`);
    const grownBytes = await sUnreclaimBytes() - before;
    p.child.kill("SIGCONT");
    await sleep(1000);
    await bash(`touch ${w}/z/f`);
    await sleep(700);
    const { records } = await p.stop();
    assert(grownBytes < 90 * 1024 * 1024, `kernel memory grew ${grownBytes >> 20} MB`);
    const lost = records.filter((r) => r.event === "lost" && r.reason === "files_overflow");
    assertEquals(lost.length, 1);
    // The rename was dropped: no remembered path is trusted after an overflow.
    const f = files(records).filter((l) => l.path!.endsWith("/f"));
    assertEquals(f.map((l) => [l.action, l.path]), [
      ["create", `${w}/z/f`],
      ["attrib", `${w}/z/f`],
      ["write", `${w}/z/f`],
    ]);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
