import { assert, assertEquals, assertMatch } from "@std/assert";
import { noKernel, of, PROCTREE, sleep, spawnAndWait, startProctree } from "./kernel.ts";
import type { WatchRecord } from "../lib/record/record.ts";

const ignore = noKernel !== null;

/** A copy of sh under a unique name, so its comm identifies it. */
async function uniqueShell(): Promise<{ path: string; name: string }> {
  const name = `ptanc${Math.random().toString(36).slice(2, 8)}`;
  const path = `/tmp/${name}`;
  await Deno.copyFile("/bin/sh", path);
  await Deno.chmod(path, 0o755);
  return { path, name };
}

function forkedBy(records: WatchRecord[], ppid: number): WatchRecord[] {
  return records.filter((r) => r.event === "fork" && r.ppid === ppid);
}

// "; true" keeps each shell from exec'ing its last command in place, so every level forks.
const NESTED = `sh -c "sh -c 'sleep 0.3; true'; true"; true`;

Deno.test({
  name: "kernel: the leaf's exec carries the chain leaf, sh, sh, named ancestor",
  ignore,
}, async () => {
  const anc = await uniqueShell();
  try {
    const w = await startProctree(["watch"]);
    const { pid: a } = await spawnAndWait(anc.path, ["-c", NESTED]);
    await sleep(300);
    const { records } = await w.stop();
    const [sh1] = forkedBy(records, a);
    const [sh2] = forkedBy(records, sh1.pid!);
    const [leaf] = forkedBy(records, sh2.pid!);
    const exec = of(records, leaf.pid!, "exec")[0];
    assertEquals(exec.comm, "sleep");
    assertMatch(
      String(exec.chain),
      new RegExp(
        `^${leaf.pid}\\|sleep\\|root;${sh2.pid}\\|sh\\|root;${sh1.pid}\\|sh\\|root;${a}\\|${anc.name}\\|root;${Deno.pid}\\|`,
      ),
    );
  } finally {
    await Deno.remove(anc.path);
  }
});

Deno.test(
  { name: "kernel: watch --under NAME shows the subtree and nothing unrelated", ignore },
  async () => {
    const anc = await uniqueShell();
    try {
      const w = await startProctree(["watch", "--under", anc.name]);
      const [inside, outside] = await Promise.all([
        spawnAndWait(anc.path, ["-c", NESTED]),
        spawnAndWait("sh", ["-c", NESTED]),
      ]);
      await sleep(300);
      const { records } = await w.stop();
      const pids = new Set(records.map((r) => r.pid));
      assert(pids.has(inside.pid), "the named ancestor itself is included");
      assert(!pids.has(outside.pid), "an unrelated process is not");
      const leafExec = records.find((r) => r.event === "exec" && r.comm === "sleep");
      assert(leafExec, "the leaf's exec is shown");
      for (const r of records) {
        if (r.chain) {
          assert(
            String(r.chain).includes(`|${anc.name}|`),
            `every chain runs through the ancestor: ${r.chain}`,
          );
        }
      }
    } finally {
      await Deno.remove(anc.path);
    }
  },
);

Deno.test(
  { name: "kernel: a reused pid never carries the dead process's chain", ignore },
  async () => {
    const anc = await uniqueShell();
    try {
      const w = await startProctree(["watch"]);
      const under = await startProctree(["watch", "--under", anc.name]);
      let reused = false;
      let old = 0;
      let records: WatchRecord[] = [];
      for (let attempt = 0; attempt < 8 && !reused; attempt++) {
        // The victim: a child of the named shell that exits at once.
        const victim = await new Deno.Command(anc.path, {
          args: ["-c", "sh -c 'echo $$; sleep 0.2; true'; sleep 0.1; true"],
          stdout: "piped",
        }).output();
        old = Number(new TextDecoder().decode(victim.stdout).trim());
        await sleep(50);
        // Make the next pid the victim's: the shell's forked child takes it.
        const out = await new Deno.Command("sh", {
          args: [
            "-c",
            `echo ${old - 1} > /proc/sys/kernel/ns_last_pid; sh -c 'echo $$; sleep 0.2'; true`,
          ],
          stdout: "piped",
        }).output();
        reused = Number(new TextDecoder().decode(out.stdout).trim()) === old;
      }
      await sleep(300);
      records = (await w.stop()).records;
      const underRecords = (await under.stop()).records;
      assert(reused, "could not make the kernel reuse a pid");
      const execs = of(records, old, "exec");
      assert(execs.length >= 2, "the victim's exec and the newcomer's");
      assert(String(execs[0].chain).includes(`|${anc.name}|`));
      for (const e of execs.slice(1)) {
        assert(!String(e.chain).includes(`|${anc.name}|`), `newcomer chain: ${e.chain}`);
      }
      // The newcomer on the reused pid is another process: another id.
      assert(execs[0].id && execs.at(-1)!.id && execs[0].id !== execs.at(-1)!.id, "ids differ");
      const underForOld = of(underRecords, old);
      assert(
        underForOld.length > 0 && underForOld.length <= 3,
        "only the victim's own events pass --under",
      );
      assert(underForOld.every((r) => String(r.chain).includes(`|${anc.name}|`)));
    } finally {
      await Deno.remove(anc.path);
    }
  },
);

Deno.test({ name: "cli: proctree chain $$ matches /proc", ignore: false }, async () => {
  const out = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "chain", String(Deno.pid)],
    stdout: "piped",
  }).output();
  assertEquals(out.code, 0);
  const chain = new TextDecoder().decode(out.stdout).trim().split(";").map((e) => e.split("|"));
  assertEquals(chain[0], [String(Deno.pid), "deno", "root"]);
  const ppid = (await new Deno.Command("sh", {
    args: ["-c", `cut -d' ' -f4 /proc/${Deno.pid}/stat`],
    stdout: "piped",
  }).output()).stdout;
  assertEquals(chain[1][0], new TextDecoder().decode(ppid).trim());
  assertEquals(chain.at(-1)![0], "1");
  const json = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "chain", "--json", String(Deno.pid)],
    stdout: "piped",
  }).output();
  assertEquals(JSON.parse(new TextDecoder().decode(json.stdout))[0], {
    pid: Deno.pid,
    comm: "deno",
    user: "root",
  });
  const missing = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "chain", "999999999"],
    stderr: "piped",
  }).output();
  assertEquals(missing.code, 1);
});

Deno.test("cli: proctree tree shows this process under its parent", async () => {
  const out = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "tree", "--json", "1"],
    stdout: "piped",
  })
    .output();
  assertEquals(out.code, 0);
  const root = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals(root.pid, 1);
  const text = new TextDecoder().decode(
    (await new Deno.Command(PROCTREE[0], { args: [...PROCTREE.slice(1), "tree"], stdout: "piped" })
      .output()).stdout,
  );
  assert(text.includes(`deno(${Deno.pid})`));
});

Deno.test({
  name: "kernel: an orphan's lines name its current parent, its chain its creator",
  ignore,
}, async () => {
  const w = await startProctree(["watch"]);
  // The subshell outlives the shell that made it, then execs: a double-forked daemon.
  const { pid: outer } = await spawnAndWait("sh", ["-c", "(sleep 0.2; exec sleep 0.1) & exit 0"]);
  await sleep(600);
  const { records } = await w.stop();
  const [sub] = forkedBy(records, outer);
  const exec = of(records, sub.pid!, "exec").find((r) => r.comm === "sleep");
  assert(exec, "the subshell's exec was seen");
  const exit = of(records, sub.pid!, "exit")[0];
  // The kernel's own word for the parent at exit (the exit event) is the current parent;
  // the exec line, printed after the creator's exit, must agree with it.
  assert(exec.ppid !== outer, `exec names the dead creator ${outer} as ppid`);
  assertEquals(exec.ppid, exit.ppid);
  assert(String(exec.chain).includes(`;${outer}|sh|`), "the chain keeps the creator");
});
