/**
 * Writes a synthetic `watch` log of a given size, for `report`'s memory bound: processes
 * forked by recent ones (a make-like tree), each with a fork, an exec and an exit line of
 * the real shape (ids, chains, argv).
 *
 *   deno run --allow-write scripts/big_log.ts FILE [MEGABYTES]   (default 1100)
 *
 * @module
 */

/** Writes about `megabytes` MB of log to `path`; returns the number of processes. */
export async function writeBigLog(path: string, megabytes: number): Promise<number> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  const target = megabytes * 1e6;
  let bytes = 0, n = 0;
  const t0 = Date.parse("2026-12-01T00:00:00Z");
  const iso = (ms: number) => new Date(ms).toISOString().replace("Z", "000Z");
  const chainOf: string[] = ["1|init|root"];
  let chunk: string[] = [];
  try {
    while (bytes < target) {
      n++;
      const pid = 1 + n;
      const parent = n === 1 ? 1 : 2 + Math.floor((n - 1) * (0.9 + 0.1 * Math.sin(n)));
      const ppid = Math.min(parent, pid - 1);
      const id = `h.${n.toString(36)}.1`,
        parentId = ppid === 1 ? "h.0.0" : `h.${(ppid - 1).toString(36)}.1`;
      const time = iso(t0 + n);
      const chain = `${pid}|cc|root;` + (chainOf[ppid - 1] ?? "1|init|root").slice(0, 200);
      if (chainOf.length < 1_000) chainOf.push(chain);
      const common = `"user":"root","id":"${id}","parent_id":"${parentId}","start_time":"${time}"`;
      chunk.push(
        `{"event":"fork","time":"${time}","pid":${pid},"ppid":${ppid},"comm":"make",${common},"chain":"${chain}"}`,
        `{"event":"exec","time":"${time}","pid":${pid},"ppid":${ppid},"comm":"cc","argv":["cc","-O2","-c","src/file${n}.c","-o","obj/file${n}.o"],"exe":"/usr/bin/cc","cwd":"/src","uid":0,"login_uid":null,"login_user":null,${common},"chain":"${chain}"}`,
        `{"event":"exit","time":"${
          iso(t0 + n + 5)
        }","pid":${pid},"ppid":${ppid},"comm":"cc","exit_code":${
          n % 17 ? 0 : 1
        },"signal":null,${common},"duration_ms":5,"chain":"${chain}"}`,
      );
      if (chunk.length >= 3000) {
        const b = enc.encode(chunk.join("\n") + "\n");
        bytes += b.length;
        await file.write(b);
        chunk = [];
      }
    }
    if (chunk.length) await file.write(enc.encode(chunk.join("\n") + "\n"));
  } finally {
    file.close();
  }
  return n;
}

if (import.meta.main) {
  const [path, mb] = Deno.args;
  if (!path) {
    console.error("usage: deno run --allow-write scripts/big_log.ts FILE [MEGABYTES]");
    Deno.exit(2);
  }
  const n = await writeBigLog(path, Number(mb ?? 1100));
  console.error(`${path}: ${n} processes`);
}
