/**
 * Micro-benchmarks of the pure pipeline, no kernel needed:
 *
 *   deno task bench
 *
 * - decode: events per second out of a buffer of captured-format datagrams;
 * - tree: apply fork/exec/exit to the tree and build the chain, per event;
 * - json: format one watch line.
 *
 * @module
 */

import { type Decoded, decodeDatagram, type ProcEvent } from "../lib/event/wire.ts";
import { DATAGRAM_BYTES, encodeEventInto } from "../lib/event/encode.ts";
import { PidTree } from "../lib/tree/tree.ts";
import { formatChain, toJsonLine, type WatchRecord } from "../lib/record/record.ts";
import { Users } from "../lib/tree/users.ts";
import { WallClock } from "../lib/time.ts";

const N = 4096;
const buf = new Uint8Array(N * DATAGRAM_BYTES);
const view = new DataView(buf.buffer);
for (let i = 0; i < N; i++) {
  const pid = 1000 + i;
  const base = { seq: i, ack: 0, cpu: i & 1, timestampNs: 1e12 + i * 1000 };
  const ev: ProcEvent = i % 3 === 0
    ? { ...base, what: "fork", pid, tgid: pid, parentPid: 100, parentTgid: 100 }
    : i % 3 === 1
    ? { ...base, what: "exec", pid, tgid: pid }
    : {
      ...base,
      what: "exit",
      pid,
      tgid: pid,
      exitCode: 0,
      exitSignal: 17,
      parentPid: 100,
      parentTgid: 100,
    };
  encodeEventInto(view, i * DATAGRAM_BYTES, ev);
}
const out: Decoded[] = [];

Deno.bench({ name: "decode 4096 datagrams", group: "decode", baseline: true, n: 2000 }, () => {
  out.length = 0;
  for (let i = 0; i < N; i++) decodeDatagram(view, i * DATAGRAM_BYTES, DATAGRAM_BYTES, out);
});

const users = new Users(() => "root:x:0:0::/:/bin/sh\n");
const tree = new PidTree({ graceMs: 0, maxExited: 1000 });
tree.seed([
  { pid: 1, ppid: 0, comm: "systemd", euid: 0, startTicks: 1 },
  { pid: 100, ppid: 1, comm: "agent", euid: 0, startTicks: 2 },
  { pid: 101, ppid: 100, comm: "sh", euid: 0, startTicks: 3 },
]);
let next = 2000;
const info = {
  comm: "touch",
  argv: ["touch", "x"],
  exe: "/usr/bin/touch",
  uid: 0,
  ppid: null,
  startTicks: null,
  cwd: null,
  loginUid: null,
};

Deno.bench({ name: "tree: fork + exec + exit, chain on each", group: "tree", n: 200_000 }, () => {
  const pid = 2000 + (next++ % 30000);
  const ts = next * 1000;
  const n = tree.fork(pid, 101, ts);
  formatChain(tree.chain(n), users);
  tree.exec(pid, info);
  formatChain(tree.chain(n), users);
  tree.exit(pid, 0, 101, ts);
  formatChain(tree.chain(n), users);
  tree.sweep(ts);
});

const clock = new WallClock(1.7e18);
const rec: WatchRecord = {
  event: "exec",
  time: clock.iso(1e12),
  pid: 2345,
  ppid: 101,
  comm: "touch",
  argv: ["touch", "/tmp/some file"],
  exe: "/usr/bin/touch",
  uid: 0,
  user: "root",
  chain: "2345|touch|root;101|sh|root;100|agent|root;1|systemd|root",
};

Deno.bench({ name: "json line", group: "format", n: 500_000 }, () => {
  toJsonLine(rec);
});

Deno.bench({ name: "iso time", group: "format", n: 500_000 }, () => {
  clock.iso(1e12 + (next++ % 1000) * 1000);
});
