import { assert, assertEquals } from "@std/assert";
import { ARM_AT_QUEUED_SHARE, ProcConnector } from "../ffi/source/connector.ts";
import { queuedBytes } from "../ffi/libc.ts";
import { type Decoded, decodeDatagram } from "../lib/event/wire.ts";
import { LossAccounting } from "../lib/event/loss.ts";
import { noKernel } from "./kernel.ts";
import { listDir, readFileText } from "../ffi/procfs.ts";

const ignore = noKernel !== null;

/** Runs `n` short-lived children of one shell; resolves when the shell exits. */
async function children(n: number): Promise<number> {
  const sh = new Deno.Command("sh", {
    args: ["-c", `i=0; while [ $i -lt ${n} ]; do /bin/true; i=$((i+1)); done`],
  }).spawn();
  await sh.status;
  return sh.pid;
}

/**
 * Reads everything `c` holds, waiting `settleMs` first (the last events, and a loss mark
 * the reader thread owes, may still be on their way), into `into`.
 */
async function readAll(c: ProcConnector, into: Decoded[], settleMs = 200): Promise<number> {
  await new Promise((r) => setTimeout(r, settleMs));
  let lossReports = 0;
  while (c.receive((v, o, l) => decodeDatagram(v, o, l, into), () => lossReports++) > 0) {
    // until empty
  }
  return lossReports;
}

/** A few processes on every CPU: each CPU sends again, so its earlier losses show as gaps. */
async function everyCpuSends(): Promise<void> {
  for (let cpu = 0; cpu < navigator.hardwareConcurrency; cpu++) {
    await new Deno.Command("taskset", {
      args: ["-c", String(cpu), "sh", "-c", "/bin/true; /bin/true; /bin/true"],
    }).output();
  }
}

/**
 * `n` children while this thread reads nothing (it only awaits the shell), then everything
 * read: the shell's children's execs, the losses the sequence numbers show, how many times
 * a loss was reported. Then every CPU sends again, so each earlier loss shows as a gap (a
 * CPU's last losses show only once it sends again).
 */
async function burstUnread(c: ProcConnector, n: number) {
  const sh = await children(n);
  const decoded: Decoded[] = [];
  let lossReports = await readAll(c, decoded);
  await everyCpuSends();
  lossReports += await readAll(c, decoded);
  const loss = new LossAccounting(false);
  let execs = 0;
  for (const d of decoded) {
    if (d.what === "error" || d.what === "ack" || d.what === "unknown") continue;
    loss.observe(d.cpu, d.seq);
    if (d.what === "exec" && d.tgid !== sh) execs++;
  }
  return { execs, lost: loss.lost, lossReports, stats: { ...c.stats } };
}

Deno.test({
  name: "kernel: the reader thread empties a small socket queue while the loop reads nothing",
  ignore,
}, async () => {
  // 64k asked (~250 datagrams): 3 events per child, 1 500 children, none read meanwhile.
  const c = ProcConnector.open({ rcvbufBytes: 64 * 1024 });
  try {
    assert(c.reader !== null, c.readerNote ?? "no reader thread");
    assert(c.reader.armed, "armed all along over a queue this small");
    const r = await burstUnread(c, 1500);
    assertEquals(r.stats.overruns, 0, "the kernel's queue never overflowed");
    assertEquals(r.lost, 0, "no sequence gap");
    assertEquals(r.lossReports, 0);
    assert(r.execs >= 1500, `${r.execs} execs`);
  } finally {
    c.close();
  }
});

Deno.test({
  name: "kernel: without the reader thread the same burst overflows the queue (what it prevents)",
  ignore,
}, async () => {
  const c = ProcConnector.open({ rcvbufBytes: 64 * 1024, backlogBytes: 0 });
  try {
    assertEquals(c.reader, null);
    const r = await burstUnread(c, 1500);
    assert(r.stats.overruns > 0 && r.lost > 0 && r.execs < 1500, JSON.stringify(r));
    assert(r.lossReports > 0);
  } finally {
    c.close();
  }
});

Deno.test({
  name: "kernel: a full backlog drops, says so where it happened, and the count is exact",
  ignore,
}, async () => {
  // 64 KiB holds ~800 datagrams; 1 500 children make 4 500 and more.
  const c = ProcConnector.open({ rcvbufBytes: 64 * 1024, backlogBytes: 64 * 1024 });
  try {
    const r = await burstUnread(c, 1500);
    const dropped = r.stats.backlogDropped ?? 0;
    assert(dropped > 0, JSON.stringify(r.stats));
    assert(r.lossReports > 0, "the loop was told where");
    // The gaps the sequence numbers show are what the backlog dropped (plus any overflow of
    // the kernel's own queue): none counted twice, none invented.
    assert(
      r.lost > 0 && r.lost <= dropped + (r.stats.overruns > 0 ? Infinity : 0),
      JSON.stringify(r),
    );
    if (r.stats.overruns === 0) assertEquals(r.lost, dropped);
  } finally {
    c.close();
  }
});

Deno.test({
  name: "kernel: the reader thread sleeps until armed, and close ends it",
  ignore,
}, async () => {
  const c = ProcConnector.open();
  const r = c.reader;
  assert(r !== null, c.readerNote ?? "");
  assert(!r.armed);
  const tid = r.tid;
  const stat = () => readFileText(`/proc/self/task/${tid}/stat`);
  assert(tid > 0 && stat() !== null);
  // Asleep on a futex, not polling: its CPU time stays still while events come.
  const cpu = () => {
    const f = stat()!.split(") ")[1].split(" ");
    return Number(f[11]) + Number(f[12]);
  };
  // Its start (a runtime of its own) may still be finishing: measured once it has settled.
  let t0 = cpu();
  for (let i = 0; i < 20; i++) {
    await new Promise((res) => setTimeout(res, 300));
    if (cpu() === t0) break;
    t0 = cpu();
  }
  await new Deno.Command("sh", { args: ["-c", "for i in 1 2 3 4 5; do /bin/true; done"] })
    .output();
  await new Promise((res) => setTimeout(res, 300));
  assertEquals(cpu(), t0, "a disarmed thread does not wake for events");
  c.close();
  const gone = () => stat() === null;
  for (let i = 0; i < 100 && !gone(); i++) await new Promise((res) => setTimeout(res, 20));
  assert(gone(), `thread ${tid} still there after close`);
});

Deno.test({
  name:
    "kernel: over a large queue the thread is armed once the loop is behind and the queue fills",
  ignore,
}, async () => {
  // 16M asked: the kernel grants 32M, the smallest queue not read all along.
  const c = ProcConnector.open({ rcvbufBytes: 16 * 1024 * 1024 });
  try {
    const r = c.reader;
    assert(r !== null, c.readerNote ?? "");
    c.readAhead(true);
    assert(!r.armed, "behind, but the kernel's queue is empty");
    // ~9 000 datagrams unread: more than an eighth of 32M in the kernel's own accounting.
    await children(3000);
    const queued = queuedBytes(c.fd);
    assert(queued !== null && queued >= c.rcvbufBytes * ARM_AT_QUEUED_SHARE, `${queued}`);
    assert(!r.armed, "armed only when the loop looks");
    const into: Decoded[] = [];
    c.receive((v, o, l) => decodeDatagram(v, o, l, into), undefined, 1);
    assert(r.armed, "the next drain arms it");
    c.readAhead(false);
    assert(!r.armed, "disarmed once the loop has caught up");
  } finally {
    c.close();
  }
});

Deno.test({
  name: "kernel: starting and closing the reader thread leaves no descriptor or thread behind",
  ignore,
}, async () => {
  const count = (dir: string) => listDir(dir).length;
  // Deno frees an ended worker's runtime (an eventfd, an epoll, a thread) at a time of its
  // own, keeping at most one: a leak per cycle would show ten times over.
  const settle = () => new Promise((r) => setTimeout(r, 300));
  ProcConnector.open().close();
  await settle();
  const fds = count("/proc/self/fd");
  const tasks = count("/proc/self/task");
  for (let i = 0; i < 10; i++) ProcConnector.open().close();
  await settle();
  assert(count("/proc/self/fd") <= fds + 2, `${count("/proc/self/fd")} descriptors, ${fds} before`);
  assert(
    count("/proc/self/task") <= tasks + 1,
    `${count("/proc/self/task")} threads, ${tasks} before`,
  );
});
