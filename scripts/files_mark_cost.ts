/**
 * What watching PATH costs the changes made elsewhere on its filesystem (issue 27, item 5):
 * a filesystem mark has the kernel queue every change on the filesystem for proctree to
 * read and drop; inode marks (one per directory under PATH) queue only PATH's. A Python loop
 * makes N files and unlinks them in a directory beside PATH (outside it), with no group, with
 * the file-change source as `--files` opens it (a filesystem mark), and with inode marks;
 * each run's wall time, the reader's CPU, and the events it read. Alternating, medians. Needs
 * root.
 *
 *   deno run -A scripts/files_mark_cost.ts [--changes 200000] [--runs 3]
 *
 * The reader here is the source alone (`FileSource`: read, decode, name, drop what is
 * outside PATH), parked in `poll(2)` like proctree's loop, without the rest of proctree.
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { FileSource } from "../ffi/source/files.ts";
import { Poller } from "../ffi/poller.ts";

type Mode = "none" | "filesystem" | "inode";

/** CPU seconds this process used so far (user + system). */
function cpuSeconds(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in ticks of 10 ms
}

async function once(mode: Mode, changes: number): Promise<[number, number, number]> {
  const base = await Deno.makeTempDir({ prefix: "proctree-marks-" });
  await Deno.mkdir(`${base}/w/a/b`, { recursive: true });
  await Deno.mkdir(`${base}/elsewhere`);
  const src = mode === "none" ? null : FileSource.open([`${base}/w`], () => {}, mode === "inode");
  const poller = src ? new Poller([src.fd]) : null;
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  const flood = new Deno.Command("python3", {
    args: [
      "-c",
      `import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    p = f"{d}/f{i}"
    open(p, "w").close(); os.unlink(p)`,
      `${base}/elsewhere`,
      String(changes),
    ],
  }).spawn();
  let done = false;
  const status = flood.status.then(() => (done = true));
  while (src && !done) {
    await poller!.wait(50);
    src.drain(undefined as never, 0);
    src.take();
  }
  await status;
  const wallS = (performance.now() - t0) / 1000;
  const events = src?.events.stats.events ?? 0;
  const cpuS = cpuSeconds() - cpu0;
  await poller?.close();
  src?.close();
  await Deno.remove(base, { recursive: true });
  return [wallS, cpuS, events];
}

if (import.meta.main) {
  const args = parseArgs(Deno.args, { string: ["changes", "runs"] });
  const changes = Number(args.changes ?? 200_000);
  const runs = Number(args.runs ?? 3);
  const modes: Mode[] = ["none", "filesystem", "inode"];
  const got = new Map<Mode, [number, number, number][]>(modes.map((m) => [m, []]));
  for (let r = 0; r < runs; r++) {
    for (const m of modes) {
      const x = await once(m, changes);
      got.get(m)!.push(x);
      console.log(
        `run ${r + 1} ${m}: ${x[0].toFixed(2)} s, reader CPU ${x[1].toFixed(2)} s, ` +
          `${x[2]} events read`,
      );
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const m of modes) {
    const xs = got.get(m)!;
    console.log(
      `${m}: ${changes} creates+unlinks outside PATH in ${
        median(xs.map((x) => x[0])).toFixed(2)
      } s, ` +
        `reader CPU ${median(xs.map((x) => x[1])).toFixed(2)} s, ` +
        `${median(xs.map((x) => x[2]))} events read (medians of ${runs})`,
    );
  }
}
