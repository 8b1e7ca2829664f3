import { assert, assertEquals } from "@std/assert";
import { noKernel, PROCTREE } from "./kernel.ts";
import { rawEvents, watchEvents } from "../mod.ts";
import { listDir, readLink } from "../ffi/procfs.ts";

const ignore = noKernel !== null;
// The descriptors proctree opens: a netlink socket and an eventfd.
const fds = () =>
  listDir("/proc/self/fd").filter((fd) => {
    const target = readLink(`/proc/self/fd/${fd}`) ?? "";
    return target.startsWith("socket:") || target.includes("eventfd");
  }).length;

Deno.test(
  { name: "library: rawEvents yields kernel events; break closes the socket", ignore },
  async () => {
    const before = fds();
    const trigger = setInterval(() => new Deno.Command("true").spawn().status, 20);
    let seen = 0;
    try {
      for await (const ev of rawEvents({ events: ["exec"] })) {
        assertEquals(ev.what, "exec");
        if (++seen === 3) break;
      }
    } finally {
      clearInterval(trigger);
    }
    assertEquals(seen, 3);
    assertEquals(fds(), before, "no leaked descriptor");
  },
);

Deno.test(
  { name: "library: watchEvents with an AbortSignal, lineage from the tree", ignore },
  async () => {
    const before = fds();
    const stop = new AbortController();
    let pid = 0;
    let chain = "";
    for await (
      const rec of watchEvents({
        events: ["exec"],
        // Deno frees a worker's runtime (an eventfd) a moment after the worker ends, at a time
        // of its own: the reader thread's descriptors are counted in
        // connector_reader_kernel_test.ts instead.
        backlogBytes: 0,
        signal: stop.signal,
        onListening: () => {
          pid = new Deno.Command("sh", { args: ["-c", "sleep 0.2"] }).spawn().pid;
        },
      })
    ) {
      if (rec.pid === pid) {
        chain = String(rec.chain);
        stop.abort();
      }
    }
    assert(chain.startsWith(`${pid}|`), chain);
    assert(chain.includes(`;${Deno.pid}|deno|`), chain);
    assertEquals(fds(), before, "no leaked descriptor");
  },
);

for (
  const [name, args] of [
    ["distinct_executables", [
      "--",
      "sh",
      "-c",
      "sleep 0.1; sleep 0.1; true",
    ]],
  ] as const
) {
  Deno.test({ name: `example: ${name} runs`, ignore }, async () => {
    const out = await new Deno.Command(PROCTREE[0], {
      args: [
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-run",
        new URL(`../examples/${name}.ts`, import.meta.url).pathname,
        ...args,
      ],
      stdout: "piped",
    }).output();
    assertEquals(out.code, 0);
    const text = new TextDecoder().decode(out.stdout);
    assert(/\s+2\s+\/usr\/bin\/sleep/.test(text), text);
  });
}

Deno.test(
  { name: "example: alert_network_tools flags curl under the watched process", ignore },
  async () => {
    const fakeCurl = "/tmp/curl";
    await Deno.copyFile("/bin/sleep", fakeCurl);
    await Deno.chmod(fakeCurl, 0o755);
    const parent = new Deno.Command("sh", { args: ["-c", `sleep 1.5; ${fakeCurl} 0.2; true`] })
      .spawn();
    const other = new Deno.Command("sh", { args: ["-c", `sleep 1.5; ${fakeCurl} 0.2; true`] })
      .spawn();
    const out = await new Deno.Command(PROCTREE[0], {
      args: [
        "run",
        "--allow-ffi",
        "--allow-read",
        new URL("../examples/alert_network_tools.ts", import.meta.url).pathname,
        String(parent.pid),
        "--for",
        "3",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    await parent.status;
    await other.status;
    await Deno.remove(fakeCurl);
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    assertEquals(lines.length, 1, lines.join("\n"));
    assert(lines[0].startsWith("ALERT ") && lines[0].includes(`;${parent.pid}|sh|`), lines[0]);
  },
);
