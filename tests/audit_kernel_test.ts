// --argv audit against the real kernel (issue 13): exact argv byte for byte, a storm of
// short-lived processes, programs that change themselves right after exec, and the host's
// audit rules exactly as before after every way proctree can end. `auditctl` (Debian's
// auditd package) is the independent view of the rules.
import { assert, assertEquals, assertMatch } from "@std/assert";
import {
  compileHelper,
  hasCommand,
  noKernel,
  parseLines,
  PROCTREE,
  sleep,
  startProctree,
} from "./kernel.ts";
import type { WatchRecord } from "../lib/record/record.ts";

const hasAuditctl = hasCommand("auditctl");
if (!hasAuditctl) console.log("audit kernel tests ignored: no auditctl (apt-get install auditd)");
const ignore = noKernel !== null || !hasAuditctl;
const decoder = new TextDecoder();

function auditctl(...args: string[]): string {
  const r = new Deno.Command("auditctl", { args, stdout: "piped", stderr: "piped" }).outputSync();
  return decoder.decode(r.stdout) + decoder.decode(r.stderr);
}

/** The rules and the `enabled` flag, as `auditctl` shows them. */
function hostState(): { rules: string; enabled: string } {
  return { rules: auditctl("-l"), enabled: /^enabled \d+/m.exec(auditctl("-s"))?.[0] ?? "?" };
}

/** Runs `fn` with a foreign rule installed, which must survive everything proctree does. */
async function withForeignRule(fn: () => Promise<void>): Promise<void> {
  const key = "foreign-to-proctree";
  auditctl("-a", "exit,always", "-F", "arch=b64", "-S", "fchmodat", "-k", key);
  const before = hostState();
  assert(before.rules.includes(key), before.rules);
  try {
    await fn();
    assertEquals(hostState(), before);
  } finally {
    auditctl("-d", "exit,always", "-F", "arch=b64", "-S", "fchmodat", "-k", key);
  }
}

/** `proctree run -q --no-tree --json --argv audit -- CMD…`: its status, lines and stderr. */
async function runAudited(cmd: string[]): Promise<{ code: number; records: WatchRecord[] }> {
  const r = await new Deno.Command(PROCTREE[0], {
    args: [
      ...PROCTREE.slice(1),
      "run",
      "-q",
      "--no-tree",
      "--json",
      "--argv",
      "audit",
      "--",
      ...cmd,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(r.code, 0, decoder.decode(r.stderr));
  return { code: r.code, records: parseLines(decoder.decode(r.stdout)) };
}

Deno.test({
  name: "kernel: --argv audit gives argv byte for byte (newline, quotes, non-UTF-8, 64 KiB)",
  ignore,
}, async () => {
  await withForeignRule(async () => {
    const script = `exec /bin/true "a b" "$(printf 'l1\\nl2')" "\\"q'" "$(printf '\\377\\376')" ` +
      `"$(head -c 65536 /dev/zero | tr '\\0' x)"`;
    const { records } = await runAudited(["/bin/sh", "-c", script]);
    const execs = records.filter((r) =>
      r.event === "exec" && (r.exe === "/usr/bin/dash" || r.exe === "/usr/bin/true")
    );
    assertEquals(execs.map((r) => r.exe), ["/usr/bin/dash", "/usr/bin/true"]);
    assertEquals(execs[0].argv, ["/bin/sh", "-c", script]);
    assertEquals(execs[1].argv, [
      "/bin/true",
      "a b",
      "l1\nl2",
      "\"q'",
      "\udcff\udcfe",
      "x".repeat(65536),
    ]);
  });
});

Deno.test({
  name: "kernel: --argv audit names ≥ 99.9 % of a 2 000-exec storm exactly, 0 wrong",
  ignore,
}, async () => {
  const n = 2000;
  const { records } = await runAudited([
    "sh",
    "-c",
    `i=0; while [ $i -lt ${n} ]; do /bin/true s$i; i=$((i+1)); done`,
  ]);
  const execs = records.filter((r) => r.event === "exec" && r.exe === "/usr/bin/true");
  const seen = new Set<string>();
  let exact = 0, wrong = 0;
  for (const r of execs) {
    const arg = r.argv?.[1];
    if (r.argv === null) continue;
    if (
      r.argv?.length === 2 && r.argv[0] === "/bin/true" && /^s\d+$/.test(arg!) && !seen.has(arg!)
    ) {
      seen.add(arg!);
      exact++;
    } else wrong++;
  }
  assertEquals(wrong, 0);
  assert(exact >= n * 0.999, `exact argv for ${exact} of ${n}`);
});

const rename = await compileHelper("rename");

Deno.test({
  name: "kernel: --argv audit: a program that renames itself and drops uid is named as it ran",
  ignore: ignore || rename === null,
}, async () => {
  const { records } = await runAudited(["sh", "-c", `for i in $(seq 100); do ${rename}; done`]);
  const execs = records.filter((r) => r.event === "exec" && r.exe === rename);
  assertEquals(execs.length, 100);
  // The kernel's record of each call: argv [helper], comm "rename", uid 0 — never null.
  for (const r of execs) {
    assertEquals([r.argv, r.comm, r.uid], [[rename], "rename", 0], JSON.stringify(r));
  }
});

Deno.test({
  name: "kernel: --argv audit leaves the host's rules as they were: SIGTERM, SIGKILL, failed start",
  ignore,
}, async () => {
  await withForeignRule(async () => {
    const before = hostState();
    // While it runs: one rule of its own, auditing on.
    let w = await startProctree(["watch", "--argv", "audit", "--events", "exec"]);
    assertMatch(auditctl("-l"), /key=proctree:\d+:\d+/);
    assertEquals(hostState().enabled, "enabled 1");
    assertEquals((await w.stop("SIGTERM")).code, 0);
    assertEquals(hostState(), before);

    // Killed: the rule stays behind; the next start removes it, and its stop restores all.
    w = await startProctree(["watch", "--argv", "audit", "--events", "exec"]);
    await w.stop("SIGKILL");
    assertMatch(auditctl("-l"), /key=proctree:/);
    w = await startProctree(["watch", "--argv", "audit", "--events", "exec"]);
    assertMatch(w.stderr(), /1 rule\(s\) left by a proctree that died were removed/);
    await w.stop("SIGINT");
    assertEquals(hostState(), before);

    // A start that fails after the rule went in: one line, status 1, nothing left.
    const r = await new Deno.Command(PROCTREE[0], {
      args: [...PROCTREE.slice(1), "watch", "--argv", "audit", "--user", "no-such-user-here"],
      stdout: "null",
      stderr: "piped",
    }).output();
    assertEquals(r.code, 1);
    assertEquals(
      decoder.decode(r.stderr).trim().split("\n").at(-1),
      "proctree: --user no-such-user-here: no such user",
    );
    assertEquals(hostState(), before);

    // run: a hang-up reaches the command, and proctree still removes its rule.
    const run = new Deno.Command(PROCTREE[0], {
      args: [
        ...PROCTREE.slice(1),
        "run",
        "-q",
        "--no-tree",
        "--argv",
        "audit",
        "--",
        "sleep",
        "30",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (let i = 0; i < 100 && !auditctl("-l").includes("key=proctree:"); i++) await sleep(100);
    await sleep(300);
    run.kill("SIGHUP");
    const status = await run.status;
    assertEquals(status.code, 128 + 1); // sleep was ended by SIGHUP
    assertEquals(hostState(), before);
  });
});

Deno.test({
  name:
    "kernel: --argv audit: two or three SIGINTs 1 ms apart during shutdown restore the host (20 of 20)",
  ignore,
}, async () => {
  const before = hostState();
  for (let round = 0; round < 20; round++) {
    const w = await startProctree(["watch", "--argv", "audit", "--events", "exec"]);
    // As `npx … task` delivers Ctrl-C: the terminal's SIGINT, then the task runner's.
    const signals = 2 + (round % 2);
    const stopped = w.stop("SIGINT");
    for (let i = 1; i < signals; i++) {
      await sleep(1);
      try {
        w.child.kill("SIGINT");
      } catch { /* already gone */ }
    }
    const { code, stderr } = await stopped;
    assertEquals(code, 0, `round ${round}: ${stderr}`);
    assertEquals(hostState(), before, `round ${round}, ${signals} signals`);
  }
});

Deno.test({
  name:
    "kernel: --argv audit: kill -9 then a restart 0.2, 0.5 or 2 s later takes the dead one's rule down",
  ignore,
}, async () => {
  const before = hostState();
  for (const afterMs of [200, 500, 2000]) {
    const dead = await startProctree(["watch", "--argv", "audit", "--events", "exec"]);
    dead.child.kill("SIGKILL");
    await sleep(afterMs);
    const w = await startProctree(["watch", "--argv", "audit", "--events", "exec"]);
    assertMatch(
      w.stderr(),
      /1 rule\(s\) left by a proctree that died were removed/,
      `${afterMs} ms`,
    );
    assertEquals(auditctl("-l").match(/key=proctree:/g)?.length, 1, `${afterMs} ms: only its own`);
    await dead.stop();
    assertEquals((await w.stop("SIGINT")).code, 0);
    assertEquals(hostState(), before, `${afterMs} ms`);
  }
});

Deno.test({
  name: "kernel: --argv audit without CAP_AUDIT_CONTROL: one line, status 1, nothing changed",
  ignore: ignore || !hasCommand("setpriv"),
}, async () => {
  const before = hostState();
  const r = await new Deno.Command("setpriv", {
    args: [
      "--inh-caps=-audit_control,-audit_read",
      "--bounding-set=-audit_control,-audit_read",
      "--",
      ...PROCTREE,
      "watch",
      "--argv",
      "audit",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assertEquals(r.code, 1);
  const lines = decoder.decode(r.stderr).trim().split("\n");
  assertEquals(lines.length, 1, lines.join("\n"));
  assertMatch(
    lines[0],
    /^proctree: --argv audit: needs CAP_AUDIT_CONTROL and CAP_AUDIT_READ \(EPERM\)$/,
  );
  assertEquals(hostState(), before);
});
