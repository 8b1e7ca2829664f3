import { assertEquals } from "@std/assert";
import { assert } from "@std/assert";
import {
  bytesOf,
  decodeBytes,
  flatCopy,
  flatJoin,
  RECENT_STRING_MAX_BYTES,
  RECENT_STRING_SLOTS,
  RecentStrings,
  terminalSafe,
} from "../lib/text.ts";

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

Deno.test("RecentStrings: what decodeBytes gives, the same string again for the same bytes", () => {
  const cache = new RecentStrings();
  const enc = (t: string) => new TextEncoder().encode(t);
  const buf = enc("xx/usr/bin/prog\0yy");
  const a = cache.decode(buf, 2, 15);
  assertEquals(a, "/usr/bin/prog");
  assert(Object.is(cache.decode(enc("/usr/bin/prog"), 0, 13), a), "shared, not decoded again");
  assertEquals(cache.decode(buf, 2, 2), "", "empty");
  // Not ASCII (not one byte per character) and too long: decoded each time, exactly.
  const raw = new Uint8Array([0x61, 0xff, 0xc3, 0xa9]);
  assertEquals(cache.decode(raw, 0, 4), decodeBytes(raw));
  assertEquals(cache.decode(raw, 0, 4), "a\udcffé");
  const long = enc("/".repeat(RECENT_STRING_MAX_BYTES + 1));
  assertEquals(cache.decode(long, 0, long.length), "/".repeat(RECENT_STRING_MAX_BYTES + 1));
  // Far more strings than slots: every answer is still the bytes' own, hit or miss.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < RECENT_STRING_SLOTS * 3; i++) {
      const t = `/p/${i.toString(36)}`;
      assertEquals(cache.decode(enc(t), 0, t.length), t);
    }
  }
});

Deno.test("text: flat joins and copies are the same strings (the representation is V8's)", () => {
  const id = /-([0-9a-f]{64})\./.exec(`docker-${"0123456789abcdef".repeat(4)}.scope`)![1];
  for (
    const s of ["", "x", "twelve chars", "thirteen char", id, "é\u{1F600}\udc80 and more than 13"]
  ) {
    assertEquals(flatCopy(s), s);
  }
  assertEquals(flatJoin(["1", "systemd", "root"], "|"), "1|systemd|root");
  assertEquals(flatJoin(["only"], ";"), "only");
  assertEquals(flatJoin([], ";"), "");
});
