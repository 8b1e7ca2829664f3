import { assert, assertEquals, assertLessOrEqual, assertMatch } from "@std/assert";
import {
  BUNDLE,
  compileHelper,
  haveBundle,
  noKernel,
  PROCTREE,
  sleep,
  startProctree,
} from "./kernel.ts";
import { listDir } from "../ffi/procfs.ts";
import type { WatchRecord } from "../lib/record/record.ts";

const root = new URL("..", import.meta.url).pathname;
const tmp = await Deno.makeTempDir();
const storm = `${tmp}/storm`;
const tiny = `${tmp}/tinybin`;
const built = await (async () => {
  try {
    const a = await new Deno.Command("cc", {
      args: ["-O2", "-o", storm, `${root}scripts/storm/storm.c`],
    }).output();
    const b = await new Deno.Command("cc", {
      args: ["-static", "-O2", "-o", tiny, `${root}scripts/storm/tiny.c`],
    })
      .output();
    return a.success && b.success;
  } catch {
    return false;
  }
})();
if (!built) console.log("storm tests ignored: cannot build scripts/storm with cc");
if (!haveBundle) {
  console.log("nobody and namespace tests ignored: no dist/proctree.js (run deno task bundle)");
}
const ignore = noKernel !== null || !built;

/** Runs a storm; returns the children's pids (a multiset) and the workers. */
async function runStorm(mode: string, n: number, workers: number) {
  const truth = `${tmp}/truth-${crypto.randomUUID()}`;
  const r = await new Deno.Command(storm, { args: [mode, String(n), String(workers), tiny, truth] })
    .output();
  assert(r.success, "storm ran");
  const children: number[] = [];
  const parentOf = new Map<number, number[]>();
  for (const line of (await Deno.readTextFile(truth)).split("\n")) {
    const m = /^(\d+) (\d+)$/.exec(line);
    if (!m) continue;
    children.push(Number(m[1]));
    parentOf.set(Number(m[1]), [...(parentOf.get(Number(m[1])) ?? []), Number(m[2])]);
  }
  await Deno.remove(truth);
  return { children, parentOf };
}

function count<T>(xs: T[]): Map<T, number> {
  const m = new Map<T, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

Deno.test({
  name: "kernel: a tiny receive buffer overruns: losses counted exactly, then resync",
  ignore,
}, async () => {
  const w = await startProctree(["watch", "--rcvbuf", "8k"]);
  // Survivors: long-lived children of a shell started before the storm (they outlive up to
  // three storms on a slow machine; the test ends them itself).
  const holder = new Deno.Command("sh", {
    args: ["-c", "sleep 600 & sleep 600 & sleep 600 & wait"],
  }).spawn();
  await sleep(300);
  // A storm the reader happens to keep up with proves nothing (a full suite run once saw no
  // overrun at all): storms until one overran, at most three.
  const children: number[] = [];
  for (let i = 0; i < 3 && !w.stdout().includes('"event":"lost"'); i++) {
    children.push(...(await runStorm("fork", 20000, 4)).children);
    await sleep(300);
  }
  await sleep(500);
  // The survivors end after the storm, and after the resync it caused — one at a time: the
  // 8 KiB buffer holds only a few datagrams, and three exits at once (with pkill's own events)
  // can overrun it again on a busy machine, which would be a counted loss, not this test's point.
  const pgrep = await new Deno.Command("pgrep", {
    args: ["-P", String(holder.pid), "sleep"],
    stdout: "piped",
  }).output();
  const survivors = new TextDecoder().decode(pgrep.stdout).split("\n").filter(Boolean);
  assertEquals(survivors.length, 3, "the three survivors are running");
  for (const pid of survivors) {
    Deno.kill(Number(pid), "SIGTERM");
    await sleep(150);
  }
  await holder.status;
  await sleep(300);
  const { records } = await w.stop();
  const lost = records.filter((r) => r.event === "lost");
  const resyncs = records.filter((r) => r.event === "resync");
  assert(lost.length > 0, "the buffer overran");
  assert(resyncs.length > 0, "a resync followed");
  const lostTotal = lost.reduce((a, r) => a + (r.count ?? 0), 0);
  // Every storm event missing from the output is within the counted losses; the counted
  // losses exceed them only by events of other processes (none of ours are invented).
  const forks = count(records.filter((r) => r.event === "fork").map((r) => r.pid));
  const exits = count(records.filter((r) => r.event === "exit").map((r) => r.pid));
  let missing = 0;
  for (const [pid, k] of count(children)) {
    missing += Math.max(0, k - (forks.get(pid) ?? 0)) + Math.max(0, k - (exits.get(pid) ?? 0));
  }
  assert(missing > 0, "the storm lost events");
  assert(missing <= lostTotal, `missing ${missing} ≤ counted ${lostTotal}`);
  assertLessOrEqual(
    lostTotal - missing,
    Math.max(200, missing * 0.05),
    `counted ${lostTotal}, missing ${missing}`,
  );
  // The survivors' exits, after the resync, name their real parent.
  const sleeps = records.filter((r) =>
    r.event === "exit" && r.comm === "sleep" && r.ppid === holder.pid
  );
  assertEquals(sleeps.length, 3, "each survivor exits under the holder shell");
  for (const s of sleeps) {
    assert(String(s.chain).startsWith(`${s.pid}|sleep|root;${holder.pid}|sh|`), `chain ${s.chain}`);
  }
});

Deno.test(
  { name: "kernel: SIGINT, SIGTERM and SIGHUP during a storm end watch cleanly", ignore },
  async () => {
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const w = await startProctree(["watch"]);
      const s = runStorm("fork-exec", 3000, 2);
      await sleep(150);
      const t = performance.now();
      const { code, stderr } = await w.stop(sig);
      assertEquals(code, 0, `${sig}: ${stderr}`);
      assert(performance.now() - t < 5000, `${sig} ended it promptly`);
      await s;
    }
  },
);

Deno.test({
  name: "kernel: a stalled reader makes proctree drop output lines, not kernel events",
  ignore,
}, async () => {
  const child = new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "watch", "--output-buffer", "64k", "--no-chain"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const { promise: listening, resolve } = Promise.withResolvers<void>();
  const errDone = (async () => {
    for await (const chunk of child.stderr) {
      err += new TextDecoder().decode(chunk);
      if (err.includes("proctree: listening")) resolve();
    }
    resolve();
  })();
  await listening;
  await runStorm("fork-exec", 4000, 2); // ~12 000 lines: far more than the pipe and buffer hold
  await sleep(500);
  // Now read everything, let one more event through, and stop.
  const reading = new Response(child.stdout).text();
  await sleep(300);
  await new Deno.Command("true").output();
  await sleep(300);
  child.kill("SIGTERM");
  const status = await child.status;
  const out = await reading;
  await errDone;
  assertEquals(status.code, 0, err);
  const records = out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as WatchRecord);
  const outputDrops = records.filter((r) => r.event === "lost" && r.reason === "output");
  assert(outputDrops.length >= 1, "the drop was reported in the stream");
  assert(!records.some((r) => r.event === "lost" && r.reason !== "output"), "no kernel losses");
  const dropped = outputDrops.reduce((a, r) => a + (r.count ?? 0), 0);
  assert(err.includes(`${dropped} lines dropped`) || err.includes("lines dropped"), err);
});

Deno.test(
  { name: "kernel: 50 000 processes under --under: bounded tree, no fd leak", ignore },
  async () => {
    const w = await startProctree([
      "watch",
      "--under",
      "storm",
      "--max-exited",
      "1000",
      "--grace",
      "1",
      "--stats",
      "1",
    ]);
    const fdsBefore = listDir(`/proc/${w.child.pid}/fd`).length;
    const { children, parentOf } = await runStorm("fork", 50000, 4);
    await sleep(1500);
    const fdsAfter = listDir(`/proc/${w.child.pid}/fd`).length;
    const { records } = await w.stop();
    assertEquals(fdsAfter, fdsBefore, "no descriptor leaked");
    const stats = records.filter((r) => r.event === "stats");
    assert(stats.length >= 1);
    for (const s of stats) {
      assertLessOrEqual(
        s.tree_exited as number,
        1000 + 64,
        "exited nodes stay bounded",
      );
    }
    const forks = records.filter((r) => r.event === "fork");
    const lost = records.filter((r) => r.event === "lost").reduce((a, r) => a + (r.count ?? 0), 0);
    assert(
      forks.length + lost >= children.length,
      `${forks.length} forks + ${lost} lost ≥ ${children.length}`,
    );
    for (const f of forks.slice(0, 2000)) {
      const parents = parentOf.get(f.pid!);
      if (parents) assert(parents.includes(f.ppid as number), "right parent");
    }
  },
);

const deno = Deno.execPath();

/** Runs the bundle as another user or in new namespaces; deno and the bundle are copied where anyone may read them. */
async function runIsolated(prefix: string[], seconds = 5, args = ["watch"]) {
  const dir = await Deno.makeTempDir();
  await Deno.chmod(dir, 0o755);
  await Deno.copyFile(deno, `${dir}/deno`);
  await Deno.chmod(`${dir}/deno`, 0o755);
  await Deno.copyFile(BUNDLE, `${dir}/proctree.js`);
  await Deno.chmod(`${dir}/proctree.js`, 0o644);
  const t = performance.now();
  const child = new Deno.Command("timeout", {
    args: [
      "-s",
      "TERM",
      String(seconds),
      ...prefix,
      `${dir}/deno`,
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      `${dir}/proctree.js`,
      ...args,
    ],
    env: { DENO_DIR: `${dir}/cache`, HOME: dir, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await sleep(2500);
  await new Deno.Command("sh", { args: ["-c", "sleep 0.2"] }).output();
  const out = await child.output();
  await Deno.remove(dir, { recursive: true });
  return {
    code: out.code,
    ms: performance.now() - t,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
const NET_ADMIN = ["--inh-caps=+net_admin", "--ambient-caps=+net_admin"];

/**
 * Whether the kernel lets `prefix` (a user, capabilities) listen, asked by a small C program
 * rather than by proctree: "allowed", "refused: …", or null when it could not be asked.
 */
async function kernelAllows(prefix: string[]): Promise<string | null> {
  const probe = await compileHelper("cnprobe");
  if (!probe) return null;
  await Deno.chmod(probe, 0o755);
  await Deno.chmod(probe.slice(0, probe.lastIndexOf("/")), 0o755);
  const r = await new Deno.Command(prefix[0], {
    args: [...prefix.slice(1), probe],
    stdout: "piped",
  })
    .output();
  return new TextDecoder().decode(r.stdout).trim() || null;
}

const asNobody = noKernel === null ? await kernelAllows(NOBODY) : null;
const asNetAdmin = noKernel === null ? await kernelAllows([...NOBODY, ...NET_ADMIN]) : null;
if (asNobody !== "allowed") {
  console.log(`unprivileged watch test ignored: the kernel says ${asNobody} to nobody`);
}

/** Root's `sleep` seen by an unprivileged proctree: its exe is not nobody's to read. */
function seesRootsSleep(r: { stdout: string; stderr: string }): void {
  assert(r.stderr.includes("proctree: listening"), r.stderr);
  const execs = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as WatchRecord)
    .filter((x) => x.event === "exec" && x.argv?.[0] === "sleep");
  assert(execs.length >= 1, "root's sleep was seen");
  assertEquals(execs[0].exe, null, "root's /proc/<pid>/exe is not readable by nobody: null");
}

Deno.test({
  name: "kernel: as nobody where the kernel allows it, watch works; other users' /proc is null",
  ignore: ignore || !haveBundle || asNobody !== "allowed",
}, async () => {
  seesRootsSleep(await runIsolated(NOBODY));
});

Deno.test({
  name: "kernel: as nobody where the kernel refuses, watch fails with one line naming the way out",
  ignore: ignore || !haveBundle || !asNobody?.startsWith("refused"),
}, async () => {
  const r = await runIsolated(NOBODY);
  assertEquals(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assertEquals(lines.length, 1, r.stderr);
  assertEquals(
    lines[0],
    "proctree: this kernel refuses unprivileged proc-connector listeners (bind: EPERM): " +
      "run as root or with CAP_NET_ADMIN",
  );
});

Deno.test({
  name: "kernel: as nobody with CAP_NET_ADMIN alone, watch works",
  ignore: ignore || !haveBundle || asNetAdmin !== "allowed",
}, async () => {
  const r = await runIsolated([...NOBODY, ...NET_ADMIN]);
  seesRootsSleep(r);
  // No CAP_BPF: exec facts from /proc, and the listening line says why, in words.
  assertMatch(r.stderr, /exec facts: proc \(bpf\(BPF_\w+ \w+\): EPERM \(needs root, or CAP_BPF/);
});

Deno.test({
  name: "kernel: as nobody with CAP_NET_ADMIN alone, watch --net fails with one line",
  ignore: ignore || !haveBundle || asNetAdmin !== "allowed",
}, async () => {
  const r = await runIsolated([...NOBODY, ...NET_ADMIN], 5, ["watch", "--net"]);
  assertEquals(r.code, 1, r.stderr);
  assertMatch(
    r.stderr,
    /^proctree: --net: bpf\(BPF_\w+ \w+\): EPERM \(needs root, or CAP_BPF and CAP_PERFMON\)\n$/,
  );
});

Deno.test({
  name: "kernel: in new user+pid namespaces watch fails within 5 s with one line",
  ignore: ignore || !haveBundle,
}, async () => {
  const r = await runIsolated(["unshare", "-Urpf", "--mount-proc"], 10);
  assert(r.code !== 0 && r.code !== 124, `exit ${r.code}: ${r.stderr}`);
  assert(r.ms < 8000, `took ${r.ms} ms`);
  const lines = r.stderr.trim().split("\n");
  assertEquals(lines.length, 1, r.stderr);
  assert(/^proctree: .*(namespace|EPERM|no reply)/.test(lines[0]), lines[0]);
});

Deno.test(
  { name: "kernel: an exec storm leaves no descriptor open (fanotify's closed in runs)", ignore },
  async () => {
    const w = await startProctree(["watch", "--events", "exec"]);
    const fdsBefore = listDir(`/proc/${w.child.pid}/fd`).length;
    const { children } = await runStorm("fork-exec", 5000, 2);
    await sleep(1500);
    const fdsAfter = listDir(`/proc/${w.child.pid}/fd`).length;
    const { records } = await w.stop();
    assertEquals(fdsAfter, fdsBefore, "every open fanotify gave was closed");
    const kids = new Set(children);
    const named = records.filter((r) => r.event === "exec" && kids.has(r.pid!) && r.exe);
    assertEquals(named.length, children.length, "every exec of the storm named");
  },
);
