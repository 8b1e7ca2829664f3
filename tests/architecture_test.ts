import { assert, assertEquals } from "@std/assert";

const root = new URL("..", import.meta.url).pathname;

/** Every file below `dir` (relative to the repository), recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${root}${dir}`)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await filesUnder(p));
    else out.push(p);
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(`${root}${path}`).then(() => true, () => false);
}

Deno.test("ARCHITECTURE.md names only paths and folders that exist", async () => {
  const doc = await Deno.readTextFile(`${root}ARCHITECTURE.md`);
  const paths = [...doc.matchAll(/`((?:[a-z_]+\/)*[a-z_]+\.(?:ts|md|c|sh))`/g)].map((m) => m[1]);
  assert(paths.length > 40, `${paths.length} paths`);
  const files = [...await filesUnder("lib"), ...await filesUnder("ffi")];
  const missing: string[] = [];
  for (const p of new Set(paths)) {
    // A bare file name stands for one file of that name in lib/ or ffi/: it must be one.
    const found = p.includes("/")
      ? await exists(p)
      : await exists(p) || files.filter((f) => f.endsWith(`/${p}`)).length === 1;
    if (!found) missing.push(p);
  }
  assertEquals(missing, []);
  const folders = [...doc.matchAll(/`((?:[a-z_]+\/)+)`/g)].map((m) => m[1]);
  assert(folders.length >= 10, `${folders.length} folders`);
  const missingFolders = [];
  for (const f of new Set(folders)) if (!await exists(f)) missingFolders.push(f);
  assertEquals(missingFolders, []);
});

Deno.test("layout: lib/ holds no loose source module but the shared few; ffi/source/ one file a source", async () => {
  const loose = (await filesUnder("lib")).filter((f) => f.split("/").length === 2);
  assertEquals(loose.sort(), ["lib/errno.ts", "lib/netlink.ts", "lib/text.ts", "lib/time.ts"]);
  const stages = (await filesUnder("lib/source")).filter((f) => f.endsWith("/stage.ts"));
  // Every source with a stage has its edge in ffi/source/ under the folder's name.
  for (const s of stages) {
    const name = s.split("/")[2];
    assert(await exists(`ffi/source/${name}.ts`), `ffi/source/${name}.ts for ${s}`);
  }
  assertEquals(stages.length, 5);
});
