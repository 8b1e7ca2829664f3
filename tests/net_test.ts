// The network source without the kernel: address formatting, the record decoder on
// hand-made records, the stage's holding by time, and the program's new encodings.
import { assert, assertEquals } from "@std/assert";
import { Asm, Jmp } from "../lib/bpf/insn.ts";
import { Btf } from "../lib/bpf/btf.ts";
import {
  NET_SYSCALLS,
  netOffsetsFrom,
  NetRec,
  OUTCOME_NR,
  TCP_STATE,
} from "../lib/source/bpf_net/program.ts";
import {
  AF,
  decodeNet,
  formatIpv6,
  type NetEvent,
  unixPath,
} from "../lib/source/bpf_net/record.ts";
import { NetStage } from "../lib/source/bpf_net/stage.ts";
import { readFileBytes } from "../ffi/procfs.ts";
import { applyRecord, netLine, newEntry } from "../lib/report/subtree.ts";
import { pageRows } from "../lib/report/html.ts";
import { toEcs } from "../lib/sink/ecs.ts";
import { traceOf } from "../lib/report/trace.ts";
import type { WatchRecord } from "../lib/record/record.ts";
import { decodeBytes } from "../lib/text.ts";

const CALLS = NET_SYSCALLS.x86_64;

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("insn: register jumps and signed jumps", () => {
  assertEquals(
    hex(new Asm().label("l").jumpReg(Jmp.JGE, 2, 1, "l").bytes()),
    "3d 12 ff ff 00 00 00 00",
  );
  assertEquals(
    hex(new Asm().label("l").jumpImm(Jmp.JSLT, 1, 0, "l").bytes()),
    "c5 01 ff ff 00 00 00 00",
  );
});

Deno.test("formatIpv6: as RFC 5952 writes addresses", () => {
  const v6 = (s: string) => {
    const b = new Uint8Array(16);
    s.split(":").forEach((g, i) => {
      b[2 * i] = parseInt(g, 16) >> 8;
      b[2 * i + 1] = parseInt(g, 16) & 0xff;
    });
    return b;
  };
  assertEquals(formatIpv6(v6("0:0:0:0:0:0:0:1")), "::1");
  assertEquals(formatIpv6(v6("0:0:0:0:0:0:0:0")), "::");
  assertEquals(formatIpv6(v6("fe80:0:0:0:0:0:0:1")), "fe80::1");
  assertEquals(formatIpv6(v6("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
  assertEquals(formatIpv6(v6("2001:db8:0:1:1:1:1:1")), "2001:db8:0:1:1:1:1:1");
  assertEquals(formatIpv6(v6("0:0:0:0:0:ffff:7f00:1")), "::ffff:127.0.0.1");
});

Deno.test("unixPath: paths up to their NUL, abstract names whole, unnamed null", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assertEquals(unixPath(new Uint8Array([...enc("/run/x.sock"), 0, 0x41])), "/run/x.sock");
  assertEquals(unixPath(new Uint8Array([0, ...enc("abs"), 0, 0x41])), "@abs\u0000A");
  assertEquals(unixPath(new Uint8Array()), null);
  const odd = new Uint8Array([...enc("/tmp/s\n"), 0xff]);
  assertEquals(unixPath(odd), decodeBytes(odd));
});

/** A record as the program writes it. */
function record(f: {
  nr: number;
  ret?: number;
  user?: number[];
  sock?: { family: number; protocol: number; local: [number[], number]; peer: [number[], number] };
  ktimeNs?: number;
  sk?: bigint;
  state?: number;
  skErr?: number;
}): Uint8Array {
  const b = new Uint8Array(NetRec.size);
  const v = new DataView(b.buffer);
  v.setBigUint64(NetRec.ktimeNs, BigInt(f.ktimeNs ?? 1000), true);
  v.setUint32(NetRec.tgid, 42, true);
  v.setUint32(NetRec.tid, 42, true);
  v.setUint32(NetRec.nr, f.nr, true);
  v.setBigInt64(NetRec.ret, BigInt(f.ret ?? 0), true);
  v.setBigUint64(NetRec.startBoottimeNs, 123_456_789_000n, true);
  v.setInt32(NetRec.userRead, f.user ? 0 : -1, true);
  if (f.user) {
    v.setUint32(NetRec.userLen, f.user.length, true);
    b.set(f.user, NetRec.user);
  }
  if (f.sock) {
    v.setUint32(NetRec.sockRead, 1, true);
    v.setUint16(NetRec.family, f.sock.family, true);
    v.setUint16(NetRec.protocol, f.sock.protocol, true);
    v.setUint16(NetRec.localPort, f.sock.local[1], true);
    v.setUint16(NetRec.peerPort, f.sock.peer[1], false);
    b.set(f.sock.local[0], NetRec.localV4);
    b.set(f.sock.peer[0], NetRec.peerV4);
    v.setBigUint64(NetRec.sk, f.sk ?? 0xffff888800001000n, true);
    v.setUint32(NetRec.state, f.state ?? 0, true);
    v.setUint32(NetRec.skErr, f.skErr ?? 0, true);
  }
  return b;
}

const inet = (
  port: number,
  a: number[],
) => [AF.INET, 0, port >> 8, port & 0xff, ...a, 0, 0, 0, 0, 0, 0, 0, 0];

Deno.test("decodeNet: the socket's addresses when it has them, the caller's when not", () => {
  const tcp = { family: AF.INET, protocol: 6 };
  const ok = decodeNet(
    record({
      nr: CALLS.connect,
      user: inet(8080, [127, 0, 0, 1]),
      sock: { ...tcp, local: [[127, 0, 0, 1], 41234], peer: [[127, 0, 0, 1], 8080] },
    }),
    CALLS,
  ) as NetEvent;
  assertEquals(
    [
      ok.event,
      ok.family,
      ok.protocol,
      ok.address,
      ok.port,
      ok.localAddress,
      ok.localPort,
      ok.result,
    ],
    ["connect", "inet", "tcp", "127.0.0.1", 8080, "127.0.0.1", 41234, "ok"],
  );
  assertEquals(ok.startTicks, 12345);
  // Refused: the socket keeps no peer; the address is the one asked for, no local port.
  const refused = decodeNet(
    record({
      nr: CALLS.connect,
      ret: -111,
      user: inet(9, [10, 0, 0, 1]),
      sock: { ...tcp, local: [[0, 0, 0, 0], 0], peer: [[0, 0, 0, 0], 0] },
    }),
    CALLS,
  ) as NetEvent;
  assertEquals([refused.address, refused.port, refused.localPort, refused.result], [
    "10.0.0.1",
    9,
    null,
    "ECONNREFUSED",
  ]);
  // A bind of port 0: the port the kernel gave.
  const bind = decodeNet(
    record({
      nr: CALLS.bind,
      user: inet(0, [0, 0, 0, 0]),
      sock: { ...tcp, local: [[0, 0, 0, 0], 5555], peer: [[0, 0, 0, 0], 0] },
    }),
    CALLS,
  ) as NetEvent;
  assertEquals([bind.address, bind.port, bind.localPort], ["0.0.0.0", 5555, null]);
  // A short address: its errno, no address.
  const short = decodeNet(
    record({
      nr: CALLS.connect,
      ret: -22,
      user: [AF.INET, 0, 0],
      sock: { ...tcp, local: [[0, 0, 0, 0], 0], peer: [[0, 0, 0, 0], 0] },
    }),
    CALLS,
  ) as NetEvent;
  assertEquals([short.address, short.result], [null, "EINVAL"]);
});

Deno.test("decodeNet: what is not a line, and what is malformed", () => {
  assertEquals(
    decodeNet(record({ nr: CALLS.connect, user: [AF.UNSPEC, 0, 0, 0] }), CALLS),
    { kind: "disconnect", pid: 42, sk: 0n },
  );
  assertEquals(
    decodeNet(
      record({ nr: CALLS.bind, user: [AF.NETLINK, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }),
      CALLS,
    ),
    "other_family",
  );
  assertEquals(decodeNet(record({ nr: CALLS.accept4, ret: -11 }), CALLS), "accept_again");
  assertEquals(decodeNet(record({ nr: 0 }), CALLS), null, "a call the program does not keep");
  assertEquals(decodeNet(record({ nr: CALLS.connect }).subarray(0, 100), CALLS), null, "short");
  // Nothing read at all (no socket, no address): not a family proctree prints.
  assertEquals(decodeNet(record({ nr: CALLS.connect, ret: -9 }), CALLS), "other_family");
});

Deno.test("NetStage: lines wait for the events before them, one drain at most", () => {
  let drops = 0;
  const stage = new NetStage(CALLS, () => drops);
  const rec = (ns: number) =>
    record({ nr: CALLS.connect, ktimeNs: ns, user: inet(80, [1, 2, 3, 4]) });
  stage.add(rec(300));
  stage.add(rec(100));
  stage.add(new Uint8Array(10));
  assertEquals(stage.due(200).map((l) => l.timeNs), [100]);
  assert(stage.holding());
  stage.age(0);
  assertEquals(stage.due(0, false), [], "not before a drain empties the connector");
  assertEquals(stage.due(0, true).map((l) => l.timeNs), [300], "held over one drain");
  assert(!stage.holding());
  drops = 3;
  assertEquals(stage.losses(), [{ reason: "net_ringbuf_full", count: 3 }]);
  assertEquals(stage.losses(), []);
  const c = stage.counters();
  assertEquals([c.net_events, c.net_records_malformed, c.net_records_dropped], [2, 1, 3]);
  const line = stage.due(1000);
  assertEquals(line, []);
});

Deno.test("NetStage: a held line goes out before a later one, drained or not", () => {
  const stage = new NetStage(CALLS, () => 0);
  const rec = (ns: number) =>
    record({ nr: CALLS.connect, ktimeNs: ns, user: inet(80, [1, 2, 3, 4]) });
  // The first connect comes after every connector event so far: held across the drain.
  stage.add(rec(100));
  assertEquals(stage.due(50, false), []);
  stage.age(50);
  // The drain after it did not empty the connector, but its events passed both connects.
  stage.add(rec(200));
  assertEquals(stage.due(300, false).map((l) => l.timeNs), [100, 200]);
  assert(!stage.holding());
});

Deno.test("netOffsetsFrom: every member found in the running kernel's BTF", () => {
  const bytes = readFileBytes("/sys/kernel/btf/vmlinux");
  if (!bytes) return;
  const off = netOffsetsFrom(new Btf(bytes));
  assert(typeof off !== "string", String(off));
});

Deno.test("NetStage: a connect in progress and how it ended, paired by socket and time", () => {
  const stage = new NetStage(CALLS, () => 0);
  const tcp = { family: AF.INET, protocol: 6 };
  const sock = {
    ...tcp,
    local: [[10, 0, 0, 2], 40000] as [number[], number],
    peer: [[10, 0, 0, 1], 80] as [number[], number],
  };
  const inProgress = (ns: number, sk: bigint, state: number, skErr = 0) =>
    record({
      nr: CALLS.connect,
      ret: -115,
      ktimeNs: ns,
      user: inet(80, [10, 0, 0, 1]),
      sk,
      state,
      skErr,
      sock,
    });
  const outcome = (ns: number, sk: bigint, state: number, skErr = 0) =>
    record({
      nr: OUTCOME_NR,
      ktimeNs: ns,
      sk,
      state,
      skErr,
      sock,
    });
  const lines = (ls: { event: string; fields: Record<string, unknown> }[]) =>
    ls.map((l) => `${l.event} ${l.fields.result}`);
  // Over by the return (loopback): both lines at once.
  stage.add(inProgress(100, 1n, TCP_STATE.CLOSE, 111));
  // Still in SYN_SENT: an earlier outcome of the same address is another socket's.
  stage.add(outcome(150, 2n, TCP_STATE.ESTABLISHED));
  stage.add(inProgress(200, 2n, TCP_STATE.SYN_SENT));
  assertEquals(lines(stage.due(1000)), [
    "connect in_progress",
    "connect_result ECONNREFUSED",
    "connect in_progress",
  ]);
  stage.age(1000);
  stage.add(outcome(900, 2n, TCP_STATE.ESTABLISHED));
  assertEquals(lines(stage.due(1000)), ["connect_result ok"]);
  // One never resolved is given up after OUTCOME_WAIT_NS, counted.
  stage.add(inProgress(2000, 3n, TCP_STATE.SYN_SENT));
  stage.due(2000);
  stage.age(2000 + 180e9);
  assertEquals(stage.counters().net_outcomes_unknown, 1);
  stage.add(outcome(2000 + 181e9, 3n, TCP_STATE.ESTABLISHED));
  assertEquals(lines(stage.due(3e11)), []);
});

Deno.test("run --net summary: counts, destinations (failed ones marked), the page's hover line", () => {
  const rec = (event: "connect" | "bind" | "accept", f: Partial<WatchRecord>): WatchRecord => ({
    event,
    time: "2026-12-04T00:00:00.000000Z",
    pid: 7,
    family: "inet",
    protocol: "tcp",
    result: "ok",
    ...f,
  });
  const e = newEntry(rec("bind", {}), 7);
  applyRecord(e, rec("bind", { address: "0.0.0.0", port: 80 }));
  applyRecord(e, rec("connect", { address: "10.0.0.1", port: 443 }));
  applyRecord(e, rec("connect", { address: "10.0.0.1", port: 443 }));
  applyRecord(
    e,
    rec("connect", { family: "inet6", address: "::1", port: 9, result: "ECONNREFUSED" }),
  );
  applyRecord(e, rec("connect", { family: "unix", protocol: null, path: "/run/a\nb" }));
  applyRecord(e, rec("accept", { address: "10.0.0.2", port: 5000 }));
  assertEquals(e.net, {
    counts: { bind: 1, connect: 4, failed: 1, accept: 1 },
    destinations: ["tcp 10.0.0.1:443", "tcp [::1]:9 ECONNREFUSED", "unix /run/a\nb"],
    more: 0,
  });
  const line = "net: 1 bind, 4 connect, 1 failed, 1 accept: " +
    "tcp 10.0.0.1:443, tcp [::1]:9 ECONNREFUSED, unix /run/a\\x0ab";
  assertEquals(netLine(e.net!), line);
  assertEquals(pageRows([e])[0].net, line);
  const span = traceOf([e]).traceEvents.find((t) => t.ph === "X");
  assertEquals(span?.args?.net, line, "in the trace too");
});

Deno.test("ecs: a connection's source, destination, transport, direction and outcome", () => {
  const base: WatchRecord = {
    event: "connect",
    time: "2026-12-04T00:00:00.000000Z",
    pid: 7,
    comm: "curl",
    family: "inet6",
    protocol: "tcp",
    address: "::1",
    port: 443,
    local_address: "::1",
    local_port: 40000,
    result: "ECONNREFUSED",
  };
  const d = toEcs(base, null, "host") as Record<string, Record<string, unknown>>;
  assertEquals(d.event.category, ["network"]);
  assertEquals([d.event.type, d.event.outcome, d.event.action], [
    ["connection", "error"],
    "failure",
    "network-connect",
  ]);
  assertEquals(d.source, { ip: "::1", port: 40000 });
  assertEquals(d.destination, { ip: "::1", port: 443 });
  assertEquals(d.network, { transport: "tcp", type: "ipv6", direction: "egress" });
  const a = toEcs({ ...base, event: "accept", result: "ok" }, null, "host") as Record<
    string,
    Record<string, unknown>
  >;
  assertEquals([a.source.port, a.destination.port, a.network.direction], [443, 40000, "ingress"]);
  const u = toEcs(
    { ...base, family: "unix", protocol: null, path: "/run/x", address: undefined },
    null,
    "host",
  ) as Record<string, Record<string, unknown>>;
  assertEquals([u.proctree.path, u.network?.type, u.destination], ["/run/x", undefined, undefined]);
  const p = toEcs({ ...base, protocol: "udp", probe: true }, null, "host") as Record<
    string,
    Record<string, unknown>
  >;
  assertEquals([p.network.transport, p.proctree.probe], ["udp", true]);
});

Deno.test("run --net summary: a connect in progress that then failed counts as failed", () => {
  const rec = (event: "connect" | "connect_result", result: string): WatchRecord => ({
    event,
    time: "2026-12-04T00:00:00.000000Z",
    pid: 7,
    family: "inet",
    protocol: "tcp",
    address: "10.0.0.1",
    port: 443,
    result,
  });
  const e = newEntry(rec("connect", "in_progress"), 7);
  applyRecord(e, rec("connect", "in_progress"));
  applyRecord(e, rec("connect_result", "ETIMEDOUT"));
  applyRecord(e, rec("connect", "in_progress"));
  applyRecord(e, rec("connect_result", "ok"));
  assertEquals(e.net, {
    counts: { connect: 2, failed: 1 },
    destinations: ["tcp 10.0.0.1:443", "tcp 10.0.0.1:443 ETIMEDOUT"],
    more: 0,
  });
});

Deno.test("NetStage: a UDP connect whose socket lets go of its peer is a probe", () => {
  const stage = new NetStage(CALLS, () => 0);
  const udp = (sk: bigint, ns: number) =>
    record({
      nr: CALLS.connect,
      ktimeNs: ns,
      user: inet(53, [127, 0, 0, 1]),
      sock: {
        family: AF.INET,
        protocol: 17,
        local: [[127, 0, 0, 1], 5000],
        peer: [[127, 0, 0, 1], 53],
      },
      sk,
    });
  const unspec = (sk: bigint, ns: number) =>
    record({
      nr: CALLS.connect,
      ktimeNs: ns,
      user: [AF.UNSPEC, 0, 0, 0],
      sock: { family: AF.INET, protocol: 17, local: [[0, 0, 0, 0], 0], peer: [[0, 0, 0, 0], 0] },
      sk,
    });
  stage.add(udp(1n, 100));
  stage.add(udp(2n, 110));
  stage.add(unspec(1n, 120)); // glibc's route probe: connect, getsockname, let go
  const lines = stage.due(1000);
  assertEquals(lines.map((l) => l.fields.probe), [true, undefined]);
  assertEquals(stage.counters().net_disconnects, 1);
});
