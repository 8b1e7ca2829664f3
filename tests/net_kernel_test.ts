// Network connections (`--net`, issue 29): each checked against what the workload's own
// sockets say (getsockname, the server's accept), with local servers only.
import { assert, assertEquals } from "@std/assert";
import { hasCommand, noKernel, PROCTREE, sleep, startProctree } from "./kernel.ts";
import type { WatchRecord } from "../lib/record/record.ts";
import { decodeBytes } from "../lib/text.ts";

const ignore = noKernel !== null || !hasCommand("python3");

/**
 * The workloads' environment. Without HOME or SHELL, bash (pyenv's shims run under it) looks
 * the user up in the passwd database (SHELL's default comes from there), and so does
 * Python's `site` without HOME; glibc first tries nscd's socket: a real unix connect
 * (`ENOENT`) of the same process that is not the test's own. CI runs with neither set
 * (`env -i PATH=… HOME=/tmp sh -c 'python3 …'` under strace: 32 such connects; with SHELL
 * too: none). With both set, no lookup; and `own` below keeps any that is left out.
 */
const ENV = { HOME: "/tmp", SHELL: "/bin/sh" };

/** Whether `l` is the test's own: an inet one, or a unix one under one of `paths`. */
function own(l: WatchRecord, paths: string[]): boolean {
  if (l.family !== "unix") return true;
  return paths.some((p) => String(l.path).startsWith(p));
}

/**
 * Runs a Python program under `sh` (a named parent for the chain) beside `watch --net`;
 * its JSON output, its pid, and the net lines of that pid. `command`: how it is started,
 * with the program as `$0`.
 */
async function underNet(
  program: string,
  unixPaths: string[] = [],
  command = ["sh", "-c", 'python3 -c "$0"; true'],
): Promise<{ out: Record<string, unknown>; pid: number; lines: WatchRecord[] }> {
  const w = await startProctree(["watch", "--net", "--events", "exec"]);
  assert(w.stderr().includes("net: connect, accept, bind"), w.stderr());
  const r = await new Deno.Command(command[0], {
    args: [...command.slice(1), program],
    env: ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  await sleep(300);
  const { records } = await w.stop();
  const text = new TextDecoder().decode(r.stdout);
  assert(r.success, new TextDecoder().decode(r.stderr));
  const out = JSON.parse(text);
  const pid = out.pid as number;
  const lines = records.filter((x) =>
    ["connect", "connect_result", "accept", "bind"].includes(x.event) && x.pid === pid &&
    own(x, unixPaths)
  );
  return { out, pid, lines };
}

const PRELUDE = `
import socket, json, os, errno, ctypes
out = {"pid": os.getpid()}
`;

Deno.test({
  name: "kernel: --net: a TCP connect, its bind and accept, by the socket's facts",
  ignore,
}, async () => {
  const { out, pid, lines } = await underNet(
    PRELUDE + `
s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen()
c = socket.socket(); c.connect(("127.0.0.1", s.getsockname()[1]))
a, peer = s.accept()
out.update(server=s.getsockname()[1], local=c.getsockname()[1], peer=peer[1])
print(json.dumps(out))
`,
  );
  assertEquals(out.local, out.peer, "the test's own sockets agree");
  assertEquals(lines.map((l) => l.event), ["bind", "connect", "accept"]);
  const [bind, connect, accept] = lines;
  for (const l of lines) {
    assertEquals([l.family, l.protocol, l.result, l.comm], ["inet", "tcp", "ok", "python3"]);
    assert(String(l.chain).startsWith(`${pid}|python3|root;`), l.chain);
    assert(String(l.chain).split(";")[1].includes("|sh|"), l.chain);
  }
  assertEquals([bind.address, bind.port], ["0.0.0.0", out.server]);
  assertEquals([connect.address, connect.port], ["127.0.0.1", out.server]);
  assertEquals([connect.local_address, connect.local_port], ["127.0.0.1", out.local]);
  assertEquals([accept.address, accept.port], ["127.0.0.1", out.peer]);
  assertEquals([accept.local_address, accept.local_port], ["127.0.0.1", out.server]);
});

Deno.test({
  name: "kernel: --net: a process in its own network namespace, as that namespace sees it",
  ignore: ignore || !hasCommand("unshare"),
}, async () => {
  // A namespace of its own has a loopback of its own (down until raised, here by the
  // SIOCSIFFLAGS ioctl): the connect is to the namespace's 127.0.0.1, which no process of
  // the host's namespace could reach.
  const { out, pid, lines } = await underNet(
    PRELUDE + `
import fcntl, struct
out["netns"] = os.readlink("/proc/self/ns/net")
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8914, struct.pack("16sH", b"lo", 0x49))
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.socket(); c.connect(s.getsockname())
out.update(server=s.getsockname()[1], local=c.getsockname()[1])
print(json.dumps(out))
`,
    [],
    ["unshare", "-n", "sh", "-c", 'python3 -c "$0"; true'],
  );
  const host = await new Deno.Command("readlink", { args: ["/proc/self/ns/net"], stdout: "piped" })
    .output();
  assert(out.netns !== new TextDecoder().decode(host.stdout).trim(), "a namespace of its own");
  assertEquals(lines.map((l) => l.event), ["bind", "connect"]);
  const connect = lines[1];
  assertEquals([connect.address, connect.port, connect.result], ["127.0.0.1", out.server, "ok"]);
  assertEquals(connect.local_port, out.local);
  assert(String(connect.chain).startsWith(`${pid}|python3|root;`), connect.chain);
});

Deno.test(
  { name: "kernel: --net: non-blocking, refused, IPv6 and UDP connects", ignore },
  async () => {
    const { out, lines } = await underNet(
      PRELUDE + `
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
n = socket.socket(); n.setblocking(False)
out["nb"] = n.connect_ex(s.getsockname())
d = socket.socket(); d.bind(("127.0.0.1", 0)); closed = d.getsockname()[1]; d.close()
r = socket.socket(); out["refused"] = r.connect_ex(("127.0.0.1", closed)); out["closed"] = closed
s6 = socket.socket(socket.AF_INET6); s6.bind(("::1", 0)); s6.listen()
c6 = socket.socket(socket.AF_INET6); c6.connect(s6.getsockname())
out.update(server=s.getsockname()[1], server6=s6.getsockname()[1], local6=c6.getsockname()[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(("127.0.0.1", 53))
out["udp_local"] = u.getsockname()[1]
libc = ctypes.CDLL(None, use_errno=True)
unspec = (ctypes.c_ubyte * 16)()
libc.connect(u.fileno(), unspec, 16)
print(json.dumps(out))
`,
    );
    assertEquals(out.nb, 115, "EINPROGRESS, by the test's own socket");
    const connects = lines.filter((l) => l.event === "connect");
    // The last connect, to a zeroed address of family 0 (AF_UNSPEC), lets the datagram socket
    // go of its peer: not printed.
    assertEquals(connects.length, 4, JSON.stringify(connects));
    const [nb, refused, six, udp] = connects;
    assertEquals([nb.result, nb.port, nb.protocol], ["in_progress", out.server, "tcp"]);
    // On loopback the handshake is over by the call's return: its outcome follows at once.
    const results = lines.filter((l) => l.event === "connect_result");
    assertEquals(results.map((l) => [l.result, l.port]), [["ok", out.server]]);
    assertEquals([refused.result, refused.address, refused.port], [
      "ECONNREFUSED",
      "127.0.0.1",
      out.closed,
    ]);
    assertEquals([six.family, six.address, six.port, six.local_address, six.local_port], [
      "inet6",
      "::1",
      out.server6,
      "::1",
      out.local6,
    ]);
    assertEquals([udp.protocol, udp.result, udp.port, udp.local_port, udp.probe], [
      "udp",
      "ok",
      53,
      out.udp_local,
      true, // its socket let go of its peer: a route probe, as glibc's getaddrinfo makes
    ]);
  },
);

Deno.test(
  { name: "kernel: --net: unix paths exact (newline, non-UTF-8, abstract)", ignore },
  async () => {
    const dir = await Deno.makeTempDir();
    const { lines } = await underNet(
      PRELUDE + `
p = os.fsencode("${dir}") + b"/s\\n\\xff"
s = socket.socket(socket.AF_UNIX); s.bind(p); s.listen()
c = socket.socket(socket.AF_UNIX); c.connect(p)
a = socket.socket(socket.AF_UNIX); a.bind(b"\\0proctree-test-abstract"); a.listen()
d = socket.socket(socket.AF_UNIX); d.connect(b"\\0proctree-test-abstract")
m = socket.socket(socket.AF_UNIX); out["missing"] = m.connect_ex(os.fsencode("${dir}") + b"/nope")
print(json.dumps(out))
`,
      [dir, "@proctree-test-"],
    );
    await Deno.remove(dir, { recursive: true });
    const path = decodeBytes(new Uint8Array([...new TextEncoder().encode(`${dir}/s\n`), 0xff]));
    const got = lines.map((l) => [l.event, l.family, l.path, l.result]);
    assertEquals(got.filter((g) => g[0] !== "accept"), [
      ["bind", "unix", path, "ok"],
      ["connect", "unix", path, "ok"],
      ["bind", "unix", "@proctree-test-abstract", "ok"],
      ["connect", "unix", "@proctree-test-abstract", "ok"],
      ["connect", "unix", `${dir}/nope`, "ENOENT"],
    ]);
  },
);

Deno.test({ name: "kernel: --net: a malformed connect gives its errno", ignore }, async () => {
  const { out, lines } = await underNet(
    PRELUDE + `
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket()
buf = (ctypes.c_ubyte * 16)(2, 0, 0, 80, 127, 0, 0, 1)
out["short"] = libc.connect(s.fileno(), buf, 3), ctypes.get_errno()
bad = (ctypes.c_ubyte * 16)(99, 0, 0, 80)
out["bad"] = libc.connect(s.fileno(), bad, 16), ctypes.get_errno()
out["nosock"] = libc.connect(999, buf, 16), ctypes.get_errno()
print(json.dumps(out))
`,
  );
  assertEquals(out.short, [-1, 22]);
  const connects = lines.filter((l) => l.event === "connect");
  assertEquals(connects.map((l) => l.result).slice(0, 1), ["EINVAL"]);
  assert(connects.every((l) => l.result !== "ok"), JSON.stringify(connects));
});

Deno.test({
  name: "kernel: --net without BTF: one line, exit 1",
  ignore: noKernel !== null,
}, async () => {
  const r = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "watch", "--net", "--btf", "/nonexistent/x"],
    stdout: "null",
    stderr: "piped",
  }).output();
  assertEquals(r.code, 1);
  assertEquals(
    new TextDecoder().decode(r.stderr).trim(),
    "proctree: --net: no BTF at /nonexistent/x",
  );
});

Deno.test(
  { name: "kernel: --net: a connect in progress, then how it ended (a full backlog)", ignore },
  async () => {
    // A listener with a backlog of 0 takes one connection; the next one's SYN is dropped, so
    // its connect is still in progress when the call returns, until the first is accepted
    // and the SYN is sent again (about a second).
    const { out, lines } = await underNet(
      PRELUDE + `
import select
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
first = socket.socket(); first.connect(s.getsockname())
late = socket.socket(); late.setblocking(False)
out["late"] = late.connect_ex(s.getsockname())
a, _ = s.accept()
select.select([], [late], [], 10)
out.update(err=late.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), local=late.getsockname()[1])
print(json.dumps(out))
`,
    );
    assertEquals([out.late, out.err], [115, 0], "the test's own socket: in progress, then ok");
    const late = lines.filter((l) => l.event.startsWith("connect") && l.result !== "ok");
    assertEquals(late.map((l) => l.result), ["in_progress"], JSON.stringify(lines));
    const result = lines.filter((l) => l.event === "connect_result");
    assertEquals(result.length, 1, JSON.stringify(lines));
    assertEquals([result[0].result, result[0].local_port], ["ok", out.local]);
    assert(result[0].time > late[0].time, "the outcome's own time");
  },
);

Deno.test(
  { name: "kernel: run --net: each process's connections in the tree and summary", ignore },
  async () => {
    const dir = await Deno.makeTempDir();
    const program = `import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.socket(); c.connect(s.getsockname())
d = socket.socket(); d.bind(("127.0.0.1", 0)); port = d.getsockname()[1]; d.close()
socket.socket().connect_ex(("127.0.0.1", port))
print(s.getsockname()[1], port)`;
    const r = await new Deno.Command(PROCTREE[0], {
      args: [
        ...PROCTREE.slice(1),
        "run",
        "--net",
        "--summary",
        `${dir}/s.json`,
        "--",
        "sh",
        "-c",
        'python3 -c "$0"; true',
        program,
      ],
      env: ENV,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    assertEquals(r.code, 0, err);
    const [server, closed] = new TextDecoder().decode(r.stdout).trim().split(" ").map(Number);
    const doc = JSON.parse(await Deno.readTextFile(`${dir}/s.json`));
    await Deno.remove(dir, { recursive: true });
    const python = doc.tree.children.find((c: { comm: string }) => c.comm === "python3");
    assertEquals(python?.net, {
      counts: { bind: 2, connect: 2, failed: 1 },
      destinations: [`tcp 127.0.0.1:${server}`, `tcp 127.0.0.1:${closed} ECONNREFUSED`],
      more: 0,
    });
    assert(
      err.includes(
        `net: 2 bind, 2 connect, 1 failed: tcp 127.0.0.1:${server}, tcp 127.0.0.1:${closed} ECONNREFUSED`,
      ),
      err,
    );
  },
);

Deno.test(
  { name: "library: watchEvents({ net: true }) yields connect records", ignore },
  async () => {
    const { watchEvents } = await import("../mod.ts");
    const stop = new AbortController();
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (server.addr as Deno.NetAddr).port;
    const accepting = server.accept().then((c) => c.close()).catch(() => {});
    let child: Deno.ChildProcess | null = null;
    let found: Record<string, unknown> | null = null;
    const timer = setTimeout(() => stop.abort(), 15000);
    for await (
      const rec of watchEvents({
        events: ["exec"],
        net: true,
        signal: stop.signal,
        onListening: () => {
          child = new Deno.Command("python3", {
            args: ["-c", `import socket; socket.create_connection(("127.0.0.1", ${port}))`],
            env: ENV,
          }).spawn();
        },
      })
    ) {
      const ours = rec.pid === (child as Deno.ChildProcess | null)?.pid && own(rec, []);
      if (rec.event === "connect" && ours) {
        found = rec;
        stop.abort();
      }
    }
    clearTimeout(timer);
    await (child as Deno.ChildProcess | null)?.status;
    await accepting;
    server.close();
    assert(found, "a connect record for the child");
    assertEquals([found.port, found.result, found.comm], [port, "ok", "python3"]);
  },
);
