import { assert, assertEquals, assertMatch } from "@std/assert";
import { ProcConnector } from "../ffi/source/connector.ts";
import { type Decoded, decodeDatagram } from "../lib/event/wire.ts";
import { WHAT } from "../lib/event/kinds.ts";
import { noKernel, of, PROCTREE, sleep, spawnAndWait, startProctree } from "./kernel.ts";

const ignore = noKernel !== null;

Deno.test(
  { name: "kernel: fork, exec and exit 3 arrive in order with the right facts", ignore },
  async () => {
    const w = await startProctree(["watch"]);
    const { pid } = await spawnAndWait("sh", ["-c", "sleep 0.3; exit 3"]);
    await sleep(300);
    const { code, records } = await w.stop();
    assertEquals(code, 0);
    const mine = of(records, pid);
    assertEquals(mine.map((r) => r.event), ["fork", "exec", "exit"]);
    const [fork, exec, exit] = mine;
    assertEquals(fork.ppid, Deno.pid, "ppid from the fork event");
    assertEquals(exec.comm, "sh");
    assertMatch(String(exec.argv?.[0]), /(^|\/)sh$/); // Deno passes the resolved path as argv[0]
    assertEquals(exec.argv?.slice(1), ["-c", "sleep 0.3; exit 3"]);
    assertMatch(String(exec.exe), /sh|dash|bash/);
    assertEquals([exit.exit_code, exit.signal], [3, null]);
    assertMatch(exec.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert(Math.abs(Date.parse(exec.time) - Date.now()) < 60_000, "time is wall-clock time");
    // The child of sh (sleep) has sh as parent and a chain through it and this test runner.
    const sleepExec = records.find((r) => r.event === "exec" && r.ppid === pid);
    assert(sleepExec, "sleep's exec was seen");
    assertEquals(sleepExec.argv, ["sleep", "0.3"]);
    assertMatch(
      String(sleepExec.chain),
      new RegExp(`^${sleepExec.pid}\\|sleep\\|root;${pid}\\|sh\\|root;${Deno.pid}\\|`),
    );
  },
);

Deno.test(
  { name: "kernel: a process killed by SIGKILL reports signal SIGKILL", ignore },
  async () => {
    const w = await startProctree(["watch", "--events", "exit"]);
    const child = new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" })
      .spawn();
    await sleep(100);
    child.kill("SIGKILL");
    await child.status;
    await sleep(200);
    const { code, records } = await w.stop();
    assertEquals(code, 0);
    const exits = of(records, child.pid, "exit");
    assertEquals(exits.length, 1);
    assertEquals([exits[0].exit_code, exits[0].signal], [null, "SIGKILL"]);
    assert(records.every((r) => r.event === "exit"), "--events exit prints exits only");
  },
);

Deno.test({ name: "kernel: watch | head -3 exits 0", ignore }, async () => {
  const cmd = PROCTREE.map((a) => `'${a}'`).join(" ");
  const script = `set -o pipefail
(for i in $(seq 100); do /bin/true; sleep 0.05; done) &
timeout 20 ${cmd} watch -q | head -3 > /dev/null
status=$?
kill %1 2>/dev/null
exit $status`;
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    stdout: "null",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
});

Deno.test(
  { name: "kernel: SIGTERM and SIGINT end watch with status 0 and a clean stderr", ignore },
  async () => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      const w = await startProctree(["watch"]);
      await spawnAndWait("true", []);
      const { code, stderr, records } = await w.stop(sig);
      assertEquals(code, 0);
      assertEquals(stderr.trim().split("\n").length, 1, stderr);
      assert(records.length > 0);
    }
  },
);

Deno.test("cli: usage errors exit 2 with one line, --help exits 0", async () => {
  const run = (args: string[]) =>
    new Deno.Command(PROCTREE[0], {
      args: [...PROCTREE.slice(1), ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  const bad = await run(["watch", "--bogus"]);
  assertEquals(bad.code, 2);
  assertEquals(
    new TextDecoder().decode(bad.stderr),
    "proctree: watch: unknown option --bogus (see proctree watch --help)\n",
  );
  const badEvents = await run(["watch", "--events", "fork,nope"]);
  assertEquals(badEvents.code, 2);
  assertEquals((await run(["frobnicate"])).code, 2);
  for (const args of [["--help"], ["watch", "--help"], ["chain", "--help"], ["tree", "--help"]]) {
    const ok = await run(args);
    assertEquals(ok.code, 0, args.join(" "));
    assert(new TextDecoder().decode(ok.stdout).includes("Usage"));
  }
});

Deno.test(
  { name: "kernel: whether the kernel filters events is asked, and then it does filter", ignore },
  async () => {
    const all = ProcConnector.open();
    assertEquals(all.kernelFilter, false, "no filter asked for: none applied");
    all.close();
    const c = ProcConnector.open({ eventMask: WHAT.EXEC });
    try {
      if (!c.kernelFilter) return; // an older kernel: it ignored the filter request, as it should
      // What the host did between the subscription and the filter's request (and the request's
      // ack) was queued unfiltered: dropped here, so what follows is the filter's doing.
      c.receive(() => {});
      await spawnAndWait("sh", ["-c", "true"]);
      await sleep(100);
      const kinds = new Set<string>();
      c.receive((view, offset, length) => {
        const out: Decoded[] = [];
        decodeDatagram(view, offset, length, out);
        for (const d of out) kinds.add(d.what);
      });
      assert(kinds.has("exec"), [...kinds].join());
      assert(!kinds.has("fork") && !kinds.has("exit"), `the kernel filtered: ${[...kinds]}`);
    } finally {
      c.close();
    }
  },
);
