import { assertEquals } from "@std/assert";
import { SeqTracker } from "../lib/event/seq.ts";

Deno.test("seq: gaps are counted per CPU", () => {
  const t = new SeqTracker();
  assertEquals(t.observe(0, 10), 0);
  assertEquals(t.observe(1, 500), 0);
  assertEquals(t.observe(0, 11), 0);
  assertEquals(t.observe(0, 15), 3);
  assertEquals(t.observe(1, 501), 0);
});

Deno.test("seq: wraps at 2^32; duplicates and reordering are not losses", () => {
  const t = new SeqTracker();
  t.observe(0, 0xffffffff);
  assertEquals(t.observe(0, 1), 1);
  assertEquals(t.observe(0, 1), 0);
  assertEquals(t.observe(0, 0), 0);
  assertEquals(t.observe(0, 2), 0);
});
