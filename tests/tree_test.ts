import { assert, assertEquals } from "@std/assert";
import { PidTree } from "../lib/tree/tree.ts";
import { chainOf, formatChain, MAX_CHAIN_ENTRIES } from "../lib/record/record.ts";
import { Users } from "../lib/tree/users.ts";

const users = new Users(() => "root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n");
const info = (comm: string | null, ppid: number | null = null) => ({
  comm,
  argv: comm ? [comm] : null,
  exe: comm ? `/bin/${comm}` : null,
  uid: 0,
  ppid,
  startTicks: null,
  cwd: null,
  loginUid: null,
});

function seeded(): PidTree {
  const t = new PidTree({ graceMs: 1000, maxExited: 3 });
  t.seed([
    { pid: 1, ppid: 0, comm: "systemd", euid: 0, startTicks: 1 },
    { pid: 100, ppid: 1, comm: "agent", euid: 0, startTicks: 50 },
  ]);
  return t;
}

Deno.test("tree: chain through fork and exec, fsmon format", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.exec(101, info("sh"));
  t.fork(102, 101, 1.1e9);
  assertEquals(t.get(102)!.comm, "sh", "a fork carries its creator's name until exec");
  t.exec(102, info("touch"));
  assertEquals(
    formatChain(t.chain(t.get(102)!), users),
    "102|touch|root;101|sh|root;100|agent|root;1|systemd|root",
  );
});

Deno.test("tree: a chain entry written before is not reused once its name or user changed", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.exec(101, info("sh"));
  t.fork(102, 101, 1.1e9);
  t.exec(102, info("touch"));
  const line = () => formatChain(t.chain(t.get(102)!), users);
  assertEquals(line(), "102|touch|root;101|sh|root;100|agent|root;1|systemd|root");
  t.exec(101, { ...info("bash"), uid: 1000 });
  assertEquals(line(), "102|touch|root;101|bash|alice;100|agent|root;1|systemd|root");
  t.exec(101, { ...info(null), exe: "/bin/dash", uid: 1000 });
  assertEquals(line(), "102|touch|root;101|[dash]|alice;100|agent|root;1|systemd|root");
  t.exec(101, { ...info(null), exe: "/bin/zsh", uid: 1000 });
  assertEquals(line(), "102|touch|root;101|[zsh]|alice;100|agent|root;1|systemd|root");
  const renamed = new Users(() => "root:x:0:0::/:/bin/sh\nbob:x:1000:1000::/:/bin/sh\n");
  assertEquals(
    formatChain(t.chain(t.get(102)!), renamed),
    "102|touch|root;101|[zsh]|bob;100|agent|root;1|systemd|root",
  );
});

Deno.test("tree: a user the table did not name is named by a reload, and the same table's names are kept", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.exec(101, { ...info("sh"), uid: 2000 });
  let passwd = "root:x:0:0::/:/bin/sh\n";
  const table = new Users(() => passwd);
  const line = () => chainOf(t.get(101)!, table);
  assertEquals(line(), "101|sh|2000;100|agent|root;1|systemd|root");
  passwd += "carol:x:2000:2000::/:/bin/sh\n";
  // Users reloads a missing uid at most every 5 s: until then the number stands.
  assertEquals(line(), "101|sh|2000;100|agent|root;1|systemd|root");
  const realNow = Date.now;
  Date.now = () => realNow() + 10_000;
  try {
    assertEquals(line(), "101|sh|carol;100|agent|root;1|systemd|root");
  } finally {
    Date.now = realNow;
  }
  const generation = table.generation;
  assertEquals(line(), "101|sh|carol;100|agent|root;1|systemd|root");
  assertEquals(table.generation, generation, "named entries reused: no reload");
});

Deno.test("tree: chainOf walks the creators as formatChain writes tree.chain, cut alike", () => {
  const t = seeded();
  let parent = 100;
  for (let pid = 1000; pid < 1000 + MAX_CHAIN_ENTRIES + 5; pid++) {
    t.fork(pid, parent, pid * 1e6);
    t.exec(pid, info(pid % 2 ? "sh" : "a|b;c"));
    parent = pid;
  }
  for (const pid of [1000, 1001, 1000 + MAX_CHAIN_ENTRIES - 3, parent]) {
    const n = t.get(pid)!;
    assertEquals(chainOf(n, users), formatChain(t.chain(n), users));
  }
  assert(chainOf(t.get(parent)!, users).endsWith(";…"));
});

Deno.test("tree: an exec that could not be read leaves the name unknown, not stale", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.exec(101, info(null));
  assertEquals(t.get(101)!.comm, null);
  assertEquals(
    formatChain(t.chain(t.get(101)!), users),
    "101|?|root;100|agent|root;1|systemd|root",
  );
});

Deno.test("tree: PID reuse starts a new identity and never mixes chains", () => {
  const t = seeded();
  t.fork(200, 100, 1e9);
  t.exec(200, info("old"));
  const old = t.get(200)!;
  t.exit(200, 0, 100, 1.5e9);
  t.fork(300, 1, 1.6e9);
  t.exec(300, info("other"));
  t.fork(200, 300, 1.7e9);
  const fresh = t.get(200)!;
  assert(fresh !== old);
  assertEquals(formatChain(t.chain(fresh), users), "200|other|root;300|other|root;1|systemd|root");
  assertEquals(formatChain(t.chain(old), users), "200|old|root;100|agent|root;1|systemd|root");
});

Deno.test("tree: a fork for a pid believed alive retires the old process", () => {
  const t = seeded();
  t.fork(200, 100, 1e9);
  const old = t.get(200)!;
  t.fork(200, 1, 2e9); // its exit was lost
  assertEquals(old.alive, false);
  assertEquals(t.stats.vanished, 1);
  assertEquals(t.get(200)!.parent!.pid, 1);
});

Deno.test("tree: reparenting updates ppid, lineage keeps the creator", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.fork(102, 101, 1.1e9);
  t.exit(101, 0, 100, 1.2e9);
  t.exit(102, 0, 1, 1.3e9); // reparented to init before it exited
  const n = t.get(102)!;
  assertEquals(n.ppid, 1);
  assertEquals(n.parent!.pid, 101);
});

Deno.test("tree: exited nodes stay for the grace period, then go", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.exit(101, 0, 100, 1e9);
  t.sweep(1.5e9);
  assert(t.get(101));
  t.sweep(2.1e9);
  assertEquals(t.get(101), undefined);
  assertEquals(t.get(100)!.children, null);
});

Deno.test("tree: an exited parent stays while its child lives", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.fork(102, 101, 1e9);
  t.exit(101, 0, 100, 1e9);
  t.sweep(10e9);
  assertEquals(t.get(101)?.alive, false, "held past its grace period while a child lives");
  assertEquals(t.chain(t.get(102)!).map((n) => n.pid), [102, 101, 100, 1]);
  t.exit(102, 0, 1, 11e9);
  t.sweep(20e9);
  assertEquals(t.stats.exited, 0);
  assertEquals(t.get(101), undefined);
});

Deno.test("tree: the cap drops the oldest exited first and counts it", () => {
  const t = seeded();
  for (let i = 0; i < 6; i++) {
    t.fork(200 + i, 100, 1e9 + i);
    t.exit(200 + i, 0, 100, 1e9 + i);
  }
  t.sweep(1e9 + 10);
  assertEquals(t.stats.exited, 3);
  assertEquals(t.stats.evictedByCap, 3);
  assertEquals(t.get(200), undefined);
  assert(t.get(205));
});

Deno.test("tree: resync adds missing and retires vanished processes", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  const r = t.resync([
    { pid: 1, ppid: 0, comm: "systemd", euid: 0, startTicks: 1 },
    { pid: 100, ppid: 1, comm: "agent", euid: 0, startTicks: 50 },
    { pid: 500, ppid: 100, comm: "late", euid: 1000, startTicks: 900 },
  ], 5e9);
  assertEquals(r, { added: 1, removed: 1 });
  assertEquals(t.get(101)!.alive, false);
  assertEquals(
    formatChain(t.chain(t.get(500)!), users),
    "500|late|alice;100|agent|root;1|systemd|root",
  );
});

Deno.test("tree: resync replaces a pid reused while events were lost", () => {
  const t = seeded();
  const r = t.resync([
    { pid: 1, ppid: 0, comm: "systemd", euid: 0, startTicks: 1 },
    { pid: 100, ppid: 1, comm: "intruder", euid: 0, startTicks: 7000 },
  ], 5e9);
  assertEquals(r, { added: 1, removed: 1 });
  assertEquals(t.get(100)!.comm, "intruder");
});

Deno.test("tree: descendants and isUnder", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.fork(102, 101, 1e9);
  t.fork(103, 1, 1e9);
  assertEquals(t.descendants(t.get(100)!).map((n) => n.pid).sort(), [101, 102]);
  assert(t.isUnder(t.get(102)!, (n) => n.comm === "agent"));
  assert(!t.isUnder(t.get(103)!, (n) => n.comm === "agent"));
});

Deno.test("lineage: is-descendant by comm, exe, user and pinned pid", async () => {
  const { byComm, byExe, byName, byNode, byUser } = await import("../lib/tree/lineage.ts");
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.exec(101, { ...info("npm"), exe: "/usr/bin/npm", uid: 1000 });
  t.fork(102, 101, 1.1e9);
  t.exec(102, info("curl"));
  const leaf = t.get(102)!;
  assert(t.isUnder(leaf, byComm("agent")));
  assert(t.isUnder(leaf, byExe("/usr/bin/npm")));
  assert(t.isUnder(leaf, byExe("npm")));
  assert(t.isUnder(leaf, byName("npm")));
  assert(t.isUnder(leaf, byUser(1000)));
  assert(!t.isUnder(leaf, byUser(4242)));
  assert(t.isUnder(leaf, byNode(t.get(100)!)));
  assert(t.isUnder(leaf, byComm("a-very-long-process-name".slice(0, 15))) === false);
  assert(t.descendsFrom(leaf, t.get(101)!));
});

Deno.test("chain: a name the comm did not give is the executable's, in brackets; a real [ is escaped", () => {
  const t = seeded();
  t.fork(101, 100, 1e9);
  t.exec(101, { ...info(null), exe: "/usr/bin/touch" });
  assertEquals(
    formatChain(t.chain(t.get(101)!), users),
    "101|[touch]|root;100|agent|root;1|systemd|root",
  );
  t.fork(102, 100, 1e9);
  t.exec(102, info("[ls]"));
  assertEquals(formatChain(t.chain(t.get(102)!), users).split(";")[0], "102|%5Bls]|root");
});

Deno.test("tree: the holder of a pid in a window, across reuse, eviction and losses", () => {
  const t = new PidTree({ graceMs: 1000, maxExited: 100 });
  t.seed([{ pid: 1, ppid: 0, comm: "init", euid: 0, startTicks: 1 }]);
  const ms = 1e6;
  // Seeded: started long before any window.
  assertEquals(t.holder(1, 5000 * ms, 5001 * ms)?.comm, "init");
  // 10 from 5000 to 5010 ms; dropped from the tree; then 10 again from 9000 ms.
  t.fork(10, 1, 5000 * ms);
  t.exit(10, 0, 1, 5010 * ms);
  t.sweep(8000 * ms);
  assertEquals(t.get(10), undefined);
  const b = t.fork(10, 1, 9000 * ms);
  assertEquals(t.holder(10, 5005 * ms, 9500 * ms), null, "the first may have done it");
  assertEquals(t.holder(10, 5020 * ms, 9500 * ms), b, "the first had ended");
  assertEquals(t.holder(10, 4000 * ms, 4999 * ms), null, "before either");
  // Events lost: a window that reaches back before the loss names nobody.
  t.lost(9600 * ms);
  assertEquals(t.holder(10, 9500 * ms, 9700 * ms), null);
  assertEquals(t.holder(10, 9650 * ms, 9700 * ms), b);
});

Deno.test("tree: a child has its creator's facts until it execs; a change to either stays its own", () => {
  const t = new PidTree();
  t.seed([{ pid: 1, ppid: 0, comm: "init", euid: 0, startTicks: 1 }]);
  const sh = t.exec(1, {
    comm: "sh",
    argv: ["sh", "-c", "x"],
    exe: "/bin/sh",
    uid: 0,
    ppid: 0,
    startTicks: 1,
    cwd: "/root",
    loginUid: 1000,
  });
  const child = t.fork(2, 1, 1e6);
  assertEquals([child.comm, child.argv, child.exe, child.cwd, child.loginUid], [
    "sh",
    ["sh", "-c", "x"],
    "/bin/sh",
    "/root",
    1000,
  ]);
  t.rename(2, "worker");
  t.setUid(1, 33);
  assertEquals([sh.comm, sh.uid, child.comm, child.uid], ["sh", 33, "worker", 0]);
  // An exec that could not read the uid keeps the one the process had.
  const ls = t.exec(2, {
    comm: "ls",
    argv: ["ls"],
    exe: "/bin/ls",
    uid: null,
    ppid: null,
    startTicks: null,
    cwd: null,
    loginUid: null,
  });
  assertEquals([ls.comm, ls.uid, ls.cwd, sh.comm, sh.argv], ["ls", 0, null, "sh", [
    "sh",
    "-c",
    "x",
  ]]);
  t.forgetArgv(ls);
  assertEquals([ls.argv, sh.argv], [null, ["sh", "-c", "x"]]);
});
