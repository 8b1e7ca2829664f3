import { assert } from "@std/assert";
import { fuzz } from "../scripts/fuzz.ts";

Deno.test("fuzz: 20 000 random and mutated datagrams never throw or misread", () => {
  const c = fuzz(20_000, 1);
  assert(c.events > 0 && c.errors > 0 && c.unknown > 0, JSON.stringify(c));
});
