/**
 * Run a command and print every distinct executable it (or any descendant) ran, with counts.
 *
 *   deno run --allow-ffi --allow-read --allow-run examples/distinct_executables.ts -- CMD [ARGS…]
 *
 * @module
 */

import { type ProcNode, watchEvents } from "../mod.ts";

const cmd = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
if (cmd.length === 0) {
  console.error("usage: distinct_executables.ts -- CMD [ARGS…]");
  Deno.exit(2);
}

const counts = new Map<string, number>();
const stop = new AbortController();
let rootPid = 0;
let root: ProcNode | undefined;
let lost = 0;
let unreadable = 0;

const events = watchEvents({
  events: ["exec", "exit"],
  under: [(n) => {
    if (!root && n.pid === rootPid && n.ppid === Deno.pid) root = n;
    return n === root;
  }],
  signal: stop.signal,
  onListening: () => {
    const child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    rootPid = child.pid;
  },
});
for await (const rec of events) {
  if (rec.event === "lost") lost += rec.count ?? 1;
  if (rec.event === "exec") {
    if (rec.exe) counts.set(rec.exe, (counts.get(rec.exe) ?? 0) + 1);
    else unreadable++;
  }
  if (rec.event === "exit" && rec.pid === rootPid) stop.abort();
}
for (const [exe, n] of [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) {
  console.log(`${String(n).padStart(6)}  ${exe}`);
}
if (unreadable) console.log(`${String(unreadable).padStart(6)}  <exited before it could be read>`);
if (lost) console.log(`incomplete: ${lost} events lost`);
