import { assert, assertEquals } from "@std/assert";

const root = new URL("..", import.meta.url).pathname;

Deno.test("ARCHITECTURE.md names only paths that exist", async () => {
  const doc = await Deno.readTextFile(`${root}ARCHITECTURE.md`);
  const paths = [...doc.matchAll(/`((?:[a-z_]+\/)*[a-z_]+\.(?:ts|md|c|sh))`/g)].map((m) => m[1]);
  assert(paths.length > 40, `${paths.length} paths`);
  const missing: string[] = [];
  for (const p of new Set(paths)) {
    // A bare file name stands for the one in lib/ or ffi/ (e.g. `exec_reads.ts`).
    const candidates = p.includes("/") ? [p] : [p, `lib/${p}`, `ffi/${p}`];
    const found = await Promise.all(
      candidates.map((c) => Deno.stat(`${root}${c}`).then(() => true, () => false)),
    );
    if (!found.includes(true)) missing.push(p);
  }
  assertEquals(missing, []);
});
