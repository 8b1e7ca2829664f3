import { assert, assertEquals, AssertionError, assertThrows, lineDiff } from "@std/assert";
import { CliError } from "../cli/errors.ts";

Deno.test("assert stand-in: assertEquals fails with a line diff", () => {
  const e = assertThrows(
    () => assertEquals({ pid: 1, comm: "sh" }, { pid: 1, comm: "bash" }),
    AssertionError,
    "Values are not equal",
  );
  assert(e.message.includes('-     comm: "sh",'), e.message);
  assert(e.message.includes('+     comm: "bash",'), e.message);
  assert(e.message.includes("      pid: 1,"), e.message);
});

Deno.test("assert stand-in: lineDiff keeps common lines and marks the rest", () => {
  assertEquals(lineDiff("a\nb\nc", "a\nx\nc"), "    a\n-   b\n+   x\n    c");
});

Deno.test("assert stand-in: assertThrows checks the class and the message", () => {
  const e = assertThrows(
    () => {
      throw new CliError("--rcvbuf expects a size", 2);
    },
    CliError,
    "expects a size",
  );
  assertEquals(e.status, 2);
  assertThrows(() => assertThrows(() => {}), AssertionError, "Expected function to throw");
  assertThrows(
    () =>
      assertThrows(() => {
        throw new TypeError("x");
      }, CliError),
    AssertionError,
    'instance of "CliError"',
  );
  assertThrows(
    () =>
      assertThrows(
        () => {
          throw new CliError("abc");
        },
        CliError,
        "xyz",
      ),
    AssertionError,
    'include "xyz"',
  );
});
