import { assert, assertEquals } from "@std/assert";
import { compileHelper, noKernel, parseLines, sleep, startProctree } from "./kernel.ts";
import { bytesOf } from "../lib/text.ts";

const helper = await compileHelper("hostile");
const ignore = noKernel !== null || helper === null;

const ARGV = [
  "evil\nline",
  'quo"te',
  "back\\slash",
  "\x1b[31mred\x1b[0m",
  "\udcff\udcfeinvalid\udcc3",
  "",
  "A".repeat(65536),
  "A".repeat(65536),
  "--hold",
];
const COMM = 'n\nq"b\\\x1b[31\udcff';

Deno.test(
  { name: "kernel: hostile argv and comm come out as exact, valid JSON lines", ignore },
  async () => {
    const w = await startProctree(["watch", "--realtime"]);
    const child = new Deno.Command(helper!, { stdout: "null" }).spawn();
    await child.status;
    await sleep(200);
    const { stdout } = await w.stop();
    const lines = stdout.split("\n").filter(Boolean);
    const records = parseLines(stdout); // throws on any line that is not one JSON object
    assertEquals(records.length, lines.length);
    const execs = records.filter((r) => r.pid === child.pid && r.event === "exec");
    assertEquals(execs.length, 2);
    assertEquals(execs[1].argv, ARGV);
    assertEquals(
      bytesOf(execs[1].argv![4]),
      new Uint8Array([0xff, 0xfe, ...new TextEncoder().encode("invalid"), 0xc3]),
    );
    const rename = records.find((r) => r.pid === child.pid && r.event === "comm");
    assert(rename, "the rename was reported");
    assertEquals(rename.comm, COMM);
    const exit = records.find((r) => r.pid === child.pid && r.event === "exit");
    assertEquals(exit?.comm, COMM);
    // In the chain, `[` is escaped (a bracketed name is proctree's own marker).
    assert(String(exit?.chain).startsWith(`${child.pid}|n\nq"b\\\x1b%5B31\udcff|root;`));
  },
);

Deno.test({ name: "kernel: an empty argv is reported as the kernel sets it", ignore }, async () => {
  const w = await startProctree(["watch"]);
  const child = new Deno.Command(helper!, { args: ["--empty"], stdout: "null" }).spawn();
  await child.status;
  await sleep(200);
  const { records } = await w.stop();
  const execs = records.filter((r) => r.pid === child.pid && r.event === "exec");
  assertEquals(execs.length, 2);
  assertEquals(execs[1].argv, [""]);
});

Deno.test({ name: "kernel: the text view escapes control bytes", ignore }, async () => {
  const w = await startProctree(["watch", "--format", "text", "--realtime"]);
  const child = new Deno.Command(helper!, { stdout: "null" }).spawn();
  await child.status;
  await sleep(200);
  const { stdout } = await w.stop();
  // deno-lint-ignore no-control-regex
  assert(!/[\x00-\x08\x0b-\x1f\x7f]/.test(stdout), "no raw control bytes");
  const mine = stdout.split("\n").filter((l) => l.includes(` ${child.pid} `));
  assert(
    mine.some((l) => l.includes("evil\\x0aline") && l.includes("\\x1b[31mred")),
    mine.join("\n"),
  );
  assert(mine.some((l) => l.includes('renamed [n\\x0aq"b\\\\\\x1b[31\\xff]')), mine.join("\n"));
});
