import { assertEquals } from "@std/assert";
import { bytesOf, decodeBytes, terminalSafe } from "../lib/text.ts";

Deno.test("text: valid UTF-8 decodes as is", () => {
  const s = "héllo ✓ 😀";
  assertEquals(decodeBytes(new TextEncoder().encode(s)), s);
});

Deno.test("text: invalid bytes become U+DCxx and round-trip", () => {
  const raw = new Uint8Array([0x61, 0xff, 0x62, 0xc3, 0x28, 0xe2, 0x82, 0xac]);
  const s = decodeBytes(raw);
  assertEquals(s, "a\udcffb\udcc3(€");
  assertEquals(bytesOf(s), raw);
  assertEquals(JSON.stringify(s), '"a\\udcffb\\udcc3(€"');
});

Deno.test("text: terminalSafe escapes control bytes and backslashes", () => {
  assertEquals(terminalSafe("a\nb\x1b[31mc\\"), "a\\x0ab\\x1b[31mc\\\\");
  assertEquals(terminalSafe("x\udcff"), "x\\xff");
  assertEquals(terminalSafe("plain"), "plain");
  assertEquals(terminalSafe("😀"), "😀");
});

Deno.test("displayName: argv, else [comm], else [the executable's name], else <unknown>", async () => {
  const { displayName } = await import("../lib/sink/text_view.ts");
  assertEquals(displayName(["ls", "-l", "a b"], "ls", "/usr/bin/ls"), 'ls -l "a b"');
  assertEquals(displayName(null, "ls", "/usr/bin/ls"), "[ls]");
  assertEquals(displayName(null, null, "/usr/bin/netcat.traditional"), "[netcat.traditional]");
  assertEquals(displayName(null, null, null), "<unknown>");
});
