/**
 * Alert when any descendant of a given process runs a network tool.
 *
 *   deno run --allow-ffi --allow-read examples/alert_network_tools.ts PID [--for SECONDS]
 *
 * Prints one line per alert, `ALERT <pid> <program> <chain>`, on stdout.
 *
 * @module
 */

import { watchEvents } from "../mod.ts";
import type { ProcNode } from "../mod.ts";

const WATCHED = new Set(["curl", "wget", "nc", "ncat", "netcat", "socat"]);

const [pidArg, flag, seconds] = Deno.args;
if (!/^\d+$/.test(pidArg ?? "") || (flag !== undefined && flag !== "--for")) {
  console.error("usage: alert_network_tools.ts PID [--for SECONDS]");
  Deno.exit(2);
}
const ancestorPid = Number(pidArg);
const stop = new AbortController();
if (seconds) setTimeout(() => stop.abort(), Number(seconds) * 1000);
Deno.addSignalListener("SIGINT", () => stop.abort());

let ancestor: ProcNode | undefined;
for await (
  const rec of watchEvents({
    events: ["exec"],
    // Pinned to the process, not the pid number: a later process reusing the pid is not it.
    under: [(n) => n === ancestor],
    signal: stop.signal,
    onListening: (tree) => {
      ancestor = tree.get(ancestorPid);
      if (!ancestor?.alive) {
        console.error(`no process with pid ${ancestorPid}`);
        stop.abort();
      } else console.error(`watching descendants of ${ancestorPid}`);
    },
  })
) {
  const program = rec.exe?.split("/").pop() ?? rec.comm ?? "";
  if (rec.event === "exec" && WATCHED.has(program)) {
    console.log(`ALERT ${rec.pid} ${program} ${rec.chain}`);
  }
}
