// Exec facts from the BPF program (issue 25), against the real kernel: argv exactly as the
// new image got it, whatever the process does next and however briefly it lives.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { compileHelper, noKernel, of, sleep, startProctree } from "./kernel.ts";
import type { WatchRecord } from "../lib/record/record.ts";
import { programIds } from "../ffi/bpf.ts";
import { listDir, readFileBytes, readFileText } from "../ffi/procfs.ts";
import { VMLINUX_BTF_PATH } from "../ffi/source/bpf_exec.ts";

// Deno reads /sys only with --allow-all: through libc, as proctree does.
const haveBtf = readFileBytes(VMLINUX_BTF_PATH) !== null;
if (!haveBtf) console.log(`bpf exec tests ignored: no ${VMLINUX_BTF_PATH}`);
const ignore = noKernel !== null || !haveBtf;

/**
 * Runs `cmd` under `watch --events exec`; the exec lines of its pid (all, in order), or of
 * its children with `children`.
 */
async function execsOf(cmd: string[], children = false): Promise<{
  execs: WatchRecord[];
  stderr: string;
}> {
  const w = await startProctree(["watch", "--events", "exec"]);
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await child.status;
  await sleep(300);
  const { records, stderr } = await w.stop();
  const execs = children
    ? records.filter((r) => r.event === "exec" && r.ppid === child.pid)
    : of(records, child.pid, "exec");
  return { execs, stderr };
}

const last = (xs: WatchRecord[]) => xs[xs.length - 1];

Deno.test({
  name: "kernel: bpf argv is exact: spaces, newlines and bytes that are not UTF-8",
  ignore,
}, async () => {
  const perl = `exec {"/bin/true"} "tru", "a b", "x\\ny", "\\xff\\xfe", ""`;
  const { execs, stderr } = await execsOf(["perl", "-e", perl]);
  assertMatch(stderr, /exec facts: bpf/);
  const e = last(execs);
  assertEquals(e.argv, ["tru", "a b", "x\ny", "\udcff\udcfe", ""]);
  assertEquals([e.comm, e.exe, e.uid], ["true", "/usr/bin/true", 0]);
  assertEquals(e.argv_truncated, undefined);
});

Deno.test({
  name: "kernel: bpf argv past 32 KiB is cut there and says its true length",
  ignore,
}, async () => {
  // Whole when a validated /proc read got it too (the process was still there), else cut.
  const exact = (e: WatchRecord, argv: string[], bytes: number) => {
    if (!e.argv_truncated) return assertEquals(e.argv, argv);
    assertEquals(e.argv_bytes, bytes);
    const cut = e.argv!;
    assertEquals(cut.slice(0, -1), argv.slice(0, cut.length - 1));
    assert(argv[cut.length - 1].startsWith(cut[cut.length - 1]));
    // 32 KiB carried: each element and its NUL, but for an element cut in its middle.
    const midCut = cut[cut.length - 1] !== argv[cut.length - 1] ? 1 : 0;
    assertEquals(cut.reduce((n, a) => n + a.length + 1, 0) - midCut, 32768);
  };
  const one = ["/bin/true", "y".repeat(65536)];
  exact(last((await execsOf(one)).execs), one, 10 + 65537);
  const many = ["/bin/true", ...Array(100_000).fill("a")];
  exact(last((await execsOf(many)).execs), many, 10 + 200_000);
});

Deno.test({ name: "kernel: bpf argv of an exec with argc 0", ignore }, async () => {
  const helper = await compileHelper("argc0");
  assert(helper, "cc");
  const { execs } = await execsOf([helper, "/bin/true"]);
  const e = last(execs);
  // The kernel gives such an image one empty argument (Linux >= 5.18).
  assertEquals([e.argv, e.comm, e.exe], [[""], "true", "/usr/bin/true"]);
});

Deno.test({
  name: "kernel: bpf facts of a program that renames itself at once are the exec's",
  ignore,
}, async () => {
  const script = '$0 = "renamed"; select(undef, undef, undef, 0.3)';
  const { execs } = await execsOf(["/usr/bin/perl", "-e", script]);
  assertEquals(last(execs).argv, ["/usr/bin/perl", "-e", script]);
  assertEquals(last(execs).comm, "perl");
});

Deno.test({ name: "kernel: bpf facts of an exec from a non-main thread", ignore }, async () => {
  const helper = await compileHelper("threads", ["-pthread"]);
  assert(helper, "cc");
  const { execs } = await execsOf([helper, "threadexec", "200"]);
  assertEquals(last(execs).argv, ["sh", "-c", "sleep 0.2; true"]);
  assertEquals(last(execs).comm, "sh");
});

Deno.test({
  name: "kernel: bpf facts after a failed exec are the successful one's",
  ignore,
}, async () => {
  const helper = await compileHelper("failexec");
  assert(helper, "cc");
  const bad = await Deno.makeTempFile();
  await Deno.writeTextFile(bad, "not a program\n");
  await Deno.chmod(bad, 0o755);
  try {
    const { execs } = await execsOf([helper, "noexec", bad, "/bin/true"]);
    assertEquals(execs.map((e) => e.argv), [[helper, "noexec", bad, "/bin/true"], ["/bin/true"]]);
  } finally {
    await Deno.remove(bad);
  }
});

Deno.test({
  name: "kernel: bpf facts of an exec a tracer holds are that exec's",
  ignore,
}, async () => {
  const helper = await compileHelper("tracer");
  assert(helper, "cc");
  // The tracer runs the program in a child and holds its second exec 300 ms at the stop.
  const { execs } = await execsOf([helper, "/bin/sh", "-c", "exec /bin/echo traced"], true);
  const e = last(execs);
  assertEquals([e.argv, e.comm, e.exe], [["/bin/echo", "traced"], "echo", "/usr/bin/echo"]);
});

Deno.test({
  name: "kernel: bpf facts of 300 processes that exit at once are all there",
  ignore,
}, async () => {
  const w = await startProctree(["watch", "--events", "exec"]);
  const sh = new Deno.Command("sh", {
    args: ["-c", 'i=0; while [ $i -lt 300 ]; do /bin/true "n$i"; i=$((i+1)); done'],
  }).spawn();
  await sh.status;
  await sleep(300);
  const { records } = await w.stop();
  const argv = records.filter((r) => r.event === "exec" && r.ppid === sh.pid)
    .map((r) => r.argv?.join(" "));
  assertEquals(argv, Array.from({ length: 300 }, (_, i) => `/bin/true n${i}`));
});

Deno.test({
  name: "kernel: execs while proctree starts have their bpf facts (attached before subscribing)",
  ignore,
}, async () => {
  // Execs all along proctree's start-up: those between the subscription and the listening
  // line had no record when the program was loaded after the subscription (51–70 null argv
  // in each of three starts beside a shell loop).
  const sh = new Deno.Command("sh", {
    args: ["-c", 'i=0; while :; do /bin/true "n$i"; i=$((i+1)); done'],
  }).spawn();
  try {
    await sleep(100);
    const w = await startProctree(["watch", "--events", "exec"]);
    await sleep(300);
    sh.kill("SIGKILL");
    await sh.status;
    await sleep(300);
    const { records } = await w.stop();
    const execs = records.filter((r) => r.event === "exec" && r.ppid === sh.pid);
    assert(execs.length > 0, "the loop ran while proctree listened");
    const n = Number(/^n(\d+)$/.exec(execs[0].argv?.[1] ?? "")?.[1] ?? -1);
    assert(n >= 0, `the first exec's argv: ${JSON.stringify(execs[0].argv)}`);
    // Every one, from the first the connector sent, in order: none without its facts.
    assertEquals(
      execs.map((r) => r.argv?.join(" ")),
      execs.map((_, i) => `/bin/true n${n + i}`),
    );
    const exe = Deno.realPathSync("/bin/true");
    assertEquals(execs.filter((r) => r.comm !== "true" || r.exe !== exe), []);
  } finally {
    try {
      sh.kill("SIGKILL");
    } catch { /* ended */ }
    await sh.status;
  }
});

/** Program ids among the fds of process `pid` (`/proc/<pid>/fdinfo`, `prog_id:`). */
function programsOf(pid: number): number[] {
  // Through libc: Deno reads /proc only with --allow-all.
  const ids: number[] = [];
  for (const fd of listDir(`/proc/${pid}/fdinfo`)) {
    const m = /^prog_id:\s*(\d+)/m.exec(readFileText(`/proc/${pid}/fdinfo/${fd}`) ?? "");
    if (m) ids.push(Number(m[1]));
  }
  return [...new Set(ids)];
}

Deno.test({
  name: "kernel: proctree killed with -9 leaves no program loaded (the kernel's list)",
  ignore,
}, async () => {
  const w = await startProctree(["watch", "--events", "exec"]);
  const mine = programsOf(w.child.pid);
  // The exec facts, and the two counters of cgroup moves.
  assertEquals(mine.length, 3, "three programs, held by proctree's own fds");
  assert(mine.every((id) => programIds().includes(id)), "and the kernel lists them");
  await w.stop("SIGKILL");
  let left = mine;
  for (let i = 0; i < 50 && left.length; i++) {
    left = mine.filter((id) => programIds().includes(id));
    if (left.length) await sleep(100);
  }
  assertEquals(left, [], `programs still loaded 5 s after SIGKILL`);
});

Deno.test({
  name: "kernel: without BTF, exec facts come from /proc and the listening line says why",
  ignore: noKernel !== null,
}, async () => {
  const w = await startProctree(["watch", "--btf", "/nonexistent/vmlinux"]);
  const { stderr } = await w.stop();
  assertMatch(stderr, /exec facts: proc \(no BTF at \/nonexistent\/vmlinux\)/);
  const { PROCTREE } = await import("./kernel.ts");
  const r = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "watch", "--exec-facts", "bpf", "--btf", "/nonexistent/x"],
    stdout: "null",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr).trim();
  assertEquals(r.code, 1);
  assertEquals(err, "proctree: --exec-facts bpf: no BTF at /nonexistent/x");
});

Deno.test({
  name:
    "kernel: bpf names the program by the path walked inside execve; fanotify reads only the rest",
  ignore,
}, async () => {
  // A directory name with a newline and a byte that is not UTF-8, reached through a symlink;
  // a program deeper than the walk goes (fanotify names it); a #! script (fanotify names it).
  const dir = await Deno.makeTempDir();
  const deep = Array(40).fill("d").join("/");
  const setup = `cd ${dir} && odd="$(printf 'a\\nb\\377')" && mkdir "$odd" && ` +
    `cp /usr/bin/true "$odd/prog" && ln -s "$odd" link && mkdir -p ${deep} && ` +
    `cp /usr/bin/true ${deep}/prog && printf '#!/bin/sh\\n' > s.sh && chmod +x s.sh`;
  assert((await new Deno.Command("sh", { args: ["-c", setup] }).output()).success, setup);
  try {
    const w = await startProctree(["watch", "--events", "exec", "--stats", "1"]);
    const sh = new Deno.Command("sh", {
      args: ["-c", `${dir}/link/prog; ${dir}/${deep}/prog; ${dir}/s.sh; ${dir}/link/prog`],
    }).spawn();
    await sh.status;
    await sleep(1300);
    const { records } = await w.stop();
    const execs = records.filter((r) => r.event === "exec" && r.ppid === sh.pid);
    const odd = `${dir}/a\nb\udcff/prog`;
    assertEquals(execs.map((e) => [e.exe, e.script ?? null]), [
      [odd, null],
      [`${dir}/${deep}/prog`, null],
      ["/usr/bin/dash", `${dir}/s.sh`],
      [odd, null],
    ]);
    const stats = records.filter((r) => r.event === "stats").pop() as Record<string, unknown>;
    assert(Number(stats?.exec_opens_unread) >= 1, "some opens were not read");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "kernel: signals arriving while the verifier runs do not cost the bpf exec facts",
  ignore,
}, async () => {
  // The verifier gives up with EAGAIN on a pending signal; SIGHUP (proctree reopens its log)
  // is sent without pause from before proctree starts until it has gone.
  const dir = await Deno.makeTempDir();
  try {
    // `$$` is the shell's pid, which is proctree's once the shell execs it.
    // It starts once proctree handles SIGHUP (bit 0 of SigCgt), which is before it loads.
    const loop = "until grep -q '^SigCgt:.*[13579bdf]$' /proc/$$/status; do :; done; " +
      "while kill -HUP $$ 2>/dev/null; do :; done";
    const hup = ["sh", "-c", `(${loop}) & exec "$@"`, "sh"];
    const w = await startProctree(["watch", "-o", `${dir}/log`], 30000, hup);
    const { stderr } = await w.stop();
    assertMatch(stderr, /exec facts: bpf/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "kernel: bpf cwd is the exec's, exact bytes, whatever the process does next",
  ignore,
}, async () => {
  // A directory name with a space, a newline and a byte that is not UTF-8; the root; a
  // program that changes directory at once; one in a mount namespace of its own where that
  // name is a bind mount of /usr (the walked path names another directory from here).
  const dir = await Deno.makeTempDir();
  const odd = `${dir}/a b\nc\udcff`;
  const script =
    `cd ${dir} && mkdir "$(printf 'a b\\nc\\377')" && cd "$(printf 'a b\\nc\\377')" && ` +
    `/bin/true c1 && cd / && /bin/true c2 && cd "${dir}" && perl -e 'chdir "/usr"' c3 && ` +
    `unshare -m sh -c 'mount --bind /usr "$1" && cd "$1" && exec /bin/true c4' sh ` +
    `"${dir}/$(printf 'a b\\nc\\377')" && mkdir ${dir}/rm && cd ${dir}/rm && ` +
    `rmdir ${dir}/rm && /bin/true c5`;
  try {
    const w = await startProctree(["watch", "--events", "exec", "--stats", "1"]);
    const sh = new Deno.Command("sh", { args: ["-c", script] }).spawn();
    assert((await sh.status).success, script);
    await sleep(1300);
    const { records } = await w.stop();
    const cwdOf = (tag: string) =>
      records.find((r) => r.event === "exec" && r.argv?.[r.argv.length - 1] === tag)?.cwd;
    assertEquals([cwdOf("c1"), cwdOf("c2"), cwdOf("c3")], [odd, "/", dir]);
    assert([odd, null].includes(cwdOf("c4")!), "not /usr, the directory it names from here");
    // Removed before the exec (rmdir ran in it first, so its path was checked once).
    assert([`${dir}/rm (deleted)`, null].includes(cwdOf("c5")!), `${cwdOf("c5")}`);
    const stats = records.filter((r) => r.event === "stats").pop() as Record<string, unknown>;
    assert(Number(stats?.execs_cwd_unverified) >= 1, "the namespace's walk was not taken");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
