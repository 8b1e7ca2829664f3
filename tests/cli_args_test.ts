import { assertEquals } from "@std/assert";
import { parseArgs } from "@std/cli";

Deno.test("parseArgs: std-compatible subset", () => {
  const a = parseArgs([
    "watch",
    "--events=exec,exit",
    "--under",
    "sshd",
    "--under=2",
    "-q",
    "--no-chain",
    "x",
  ], {
    boolean: ["quiet", "chain"],
    string: ["events"],
    collect: ["under"],
    negatable: ["chain"],
    alias: { q: "quiet" },
    default: { chain: true },
  });
  assertEquals(a._, ["watch", "x"]);
  assertEquals(a.events, "exec,exit");
  assertEquals(a.under, ["sshd", "2"]);
  assertEquals(a.quiet, true);
  assertEquals(a.q, true);
  assertEquals(a.chain, false);
});

Deno.test("parseArgs: -- and stopEarly keep the command intact", () => {
  const a = parseArgs(["--json", "--", "sh", "-c", "exit 3"], { boolean: ["json"], "--": true });
  assertEquals(a["--"], ["sh", "-c", "exit 3"]);
  const b = parseArgs(["--json", "ls", "-la"], { boolean: ["json"], stopEarly: true });
  assertEquals(b._, ["ls", "-la"]);
});

Deno.test("parseArgs: unknown options reach the callback", () => {
  const seen: string[] = [];
  parseArgs(["--nope", "-z"], { unknown: (arg) => (seen.push(arg), false) });
  assertEquals(seen, ["--nope", "-z"]);
});
