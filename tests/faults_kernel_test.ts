// Logs that survive (issue 17): torn lines, a full disk, I/O errors as one line, output
// paths that are symlinks, modes, failed rotation; `run` never loses CMD's status.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { noKernel, PROCTREE, sleep, startProctree } from "./kernel.ts";

const ignore = noKernel !== null;
const decoder = new TextDecoder();

async function proctree(args: string[], stdout: "piped" | "null" = "piped") {
  const out = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), ...args],
    stdin: "null",
    stdout,
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: stdout === "piped" ? decoder.decode(out.stdout) : "",
    stderr: decoder.decode(out.stderr),
  };
}

async function burst(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Deno.Command("true").output();
}

Deno.test({ name: "faults: a torn last line is closed, then a restart line", ignore }, async () => {
  const dir = await Deno.makeTempDir();
  const log = `${dir}/events.jsonl`;
  await Deno.writeTextFile(log, '{"event":"exec","time":"x"}\n{"event":"ex', { mode: 0o600 });
  const w = await startProctree(["watch", "-o", log]);
  await burst(3);
  await sleep(200);
  assertEquals((await w.stop()).code, 0);
  const lines = (await Deno.readTextFile(log)).split("\n");
  assertEquals(lines[1], '{"event":"ex', "the torn line stays as it was, alone on its line");
  const restart = JSON.parse(lines[2]);
  assertEquals([restart.event, restart.repaired_torn_line], ["restart", true]);
  for (const l of lines.slice(3).filter(Boolean)) JSON.parse(l); // every later line is whole
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "faults: a full disk is said once, lines dropped and counted, then resumed",
  ignore,
}, async () => {
  const dir = await Deno.makeTempDir();
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=256k", "tmpfs", dir],
  }).output();
  // Room, once the filler is gone, for the lines that follow: one ENOSPC episode.
  assert(mount.success, "mount a 256k tmpfs");
  try {
    const log = `${dir}/events.jsonl`;
    const w = await startProctree(["watch", "-o", log, "--output-buffer", "4k"]);
    // Fill the disk with a file of our own, then make events while it is full.
    await new Deno.Command("sh", { args: ["-c", `cat /dev/zero > ${dir}/filler 2>/dev/null`] })
      .output();
    await burst(40);
    await sleep(300);
    await Deno.remove(`${dir}/filler`);
    await burst(3);
    await sleep(300);
    await burst(3);
    await sleep(300);
    const { code, stderr } = await w.stop();
    assertEquals(code, 0, stderr);
    assertEquals(stderr.match(/ENOSPC/g)?.length, 1, stderr);
    const lines = (await Deno.readTextFile(log)).split("\n").filter(Boolean).map((l) =>
      JSON.parse(l)
    );
    const lost = lines.filter((r) => r.event === "lost" && r.reason === "output");
    assert(lost.length >= 1 && lost[0].count > 0, "the dropped lines are counted in the log");
    assert(lines.at(-1).event !== "lost", "writing resumed after the space came back");
  } finally {
    await new Deno.Command("umount", { args: [dir] }).output();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({ name: "faults: stdout to /dev/full is one line and exit 1", ignore }, async () => {
  const child = new Deno.Command("sh", {
    args: ["-c", `exec ${PROCTREE.map((a) => `'${a}'`).join(" ")} watch -q > /dev/full`],
    stderr: "piped",
  }).spawn();
  await sleep(2500);
  await burst(3);
  const out = await child.output();
  assertEquals(out.code, 1);
  assertEquals(decoder.decode(out.stderr).trim(), "proctree: write to stdout: ENOSPC");
});

Deno.test(
  { name: "faults: output paths that are symlinks are refused, not followed", ignore },
  async () => {
    const dir = await Deno.makeTempDir();
    const target = `${dir}/precious`;
    await Deno.writeTextFile(target, "keep me\n", { mode: 0o644 });
    await new Deno.Command("ln", { args: ["-s", target, `${dir}/link`] }).output();
    const w = await proctree(["watch", "-o", `${dir}/link`, "--truncate"]);
    assertEquals(w.code, 1);
    assertMatch(w.stderr, /^proctree: .*link is a symbolic link/);
    const r = await proctree([
      "run",
      "-q",
      "--summary",
      `${dir}/link`,
      "--",
      "sh",
      "-c",
      `touch ${dir}/ran`,
    ]);
    assertEquals(r.code, 1, "refused before CMD started");
    assertEquals(await Deno.readTextFile(target), "keep me\n");
    assertEquals((await Deno.stat(target)).mode! & 0o777, 0o644);
    assert(!(await Deno.stat(`${dir}/ran`).catch(() => null)), "CMD did not run");
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test({ name: "faults: an existing 0644 log is made 0600, and said", ignore }, async () => {
  const dir = await Deno.makeTempDir();
  const log = `${dir}/events.jsonl`;
  await Deno.writeTextFile(log, "", { mode: 0o644 });
  await Deno.chmod(log, 0o644);
  const w = await startProctree(["watch", "-o", log]);
  const { stderr } = await w.stop();
  assertEquals((await Deno.stat(log)).mode! & 0o777, 0o600);
  assertMatch(stderr, /had mode 644; it is now 0600/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test({ name: "faults: a failed rotation is said once; writing goes on", ignore }, async () => {
  const dir = await Deno.makeTempDir();
  const log = `${dir}/events.jsonl`;
  await Deno.mkdir(`${log}.1`); // rename onto a directory fails
  await Deno.writeTextFile(`${log}.1/x`, "");
  const w = await startProctree(["watch", "-o", log, "--rotate-bytes", "1k"]);
  await burst(30);
  await sleep(300);
  const { code, stderr } = await w.stop();
  assertEquals(code, 0, stderr);
  assertEquals(stderr.match(/cannot rotate/g)?.length, 1, stderr);
  assert((await Deno.stat(log)).size > 1024, "still appending");
  await Deno.remove(dir, { recursive: true });
});

Deno.test({ name: "faults: -o /dev/stdout writes to stdout", ignore }, async () => {
  const w = await startProctree(["watch", "-o", "/dev/stdout", "--events", "exec"]);
  await burst(2);
  await sleep(200);
  const { code, records } = await w.stop();
  assertEquals(code, 0);
  assert(records.some((r) => r.event === "exec"));
});

Deno.test(
  { name: "faults: run --summary in an unwritable place fails before CMD", ignore },
  async () => {
    const dir = await Deno.makeTempDir();
    const r = await proctree([
      "run",
      "-q",
      "--summary",
      "/proc/nope/summary.json",
      "--",
      "sh",
      "-c",
      `touch ${dir}/ran`,
    ]);
    assertEquals(r.code, 1);
    assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert(!(await Deno.stat(`${dir}/ran`).catch(() => null)), "CMD did not run");
    await Deno.remove(dir, { recursive: true });
  },
);
