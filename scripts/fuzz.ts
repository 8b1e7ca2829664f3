/**
 * Deterministic fuzzing of the wire decoder and the event pipeline: random and mutated
 * datagrams (truncations, lying length fields, several messages in one buffer, unknown
 * `what`, zero length) must each yield events, "unknown" records or typed errors, and
 * never an exception.
 *
 *   deno task fuzz [CASES] [SEED]      (default 1 000 000 cases, seed 1)
 *
 * @module
 */

import { type Decoded, decodeDatagram, type ProcEvent } from "../lib/event/wire.ts";
import { type EventName, KINDS, type KindSpec } from "../lib/event/kinds.ts";
import { DATAGRAM_BYTES, encodeEvent } from "../lib/event/encode.ts";
import { EventProcessor } from "../lib/pipeline/processor.ts";
import { PidTree } from "../lib/tree/tree.ts";
import { Users } from "../lib/tree/users.ts";
import { WallClock } from "../lib/time.ts";
import { GONE_PROC } from "../lib/tree/proc_parse.ts";
import { isDeepStrictEqual } from "node:util";

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = Object.keys(KINDS) as EventName[];
const OK = new Set<string>([...NAMES, "unknown", "error"]);

/** A random event of a random kind, every field of its row filled by type. */
function randomEvent(r: () => number): ProcEvent {
  const int = () => Math.floor(r() * 2 ** 32) | 0;
  const what = NAMES[Math.floor(r() * NAMES.length)];
  const ev: Record<string, unknown> = {
    what,
    seq: Math.floor(r() * 2 ** 32),
    ack: 0,
    cpu: Math.floor(r() * 4),
    timestampNs: Math.floor(r() * 2 ** 52),
    pid: 0,
    tgid: 0,
  };
  const fields: KindSpec["fields"] = KINDS[what].fields;
  for (const [name, f] of Object.entries(fields)) {
    ev[name] = f.type === "i32"
      ? int()
      : f.type === "u32"
      ? int() >>> 0
      : new Uint8Array(Math.floor(r() * (f.bytes ?? 1))).map(() => 1 + Math.floor(r() * 255));
  }
  return ev as unknown as ProcEvent;
}

/** One fuzz case: bytes, and the events it must decode to exactly when not mutated. */
export function fuzzCase(r: () => number): { bytes: Uint8Array; intact: ProcEvent[] | null } {
  const kind = r();
  if (kind < 0.15) {
    // Pure noise of any length, zero included.
    return {
      bytes: new Uint8Array(Math.floor(r() * 300)).map(() => Math.floor(r() * 256)),
      intact: null,
    };
  }
  const count = kind < 0.3 ? 2 + Math.floor(r() * 4) : 1;
  const events = Array.from({ length: count }, () => randomEvent(r));
  const bytes = new Uint8Array(count * DATAGRAM_BYTES);
  events.forEach((e, i) => bytes.set(encodeEvent(e), i * DATAGRAM_BYTES));
  if (kind < 0.45) return { bytes, intact: events };
  const v = new DataView(bytes.buffer);
  const at = Math.floor(r() * count) * DATAGRAM_BYTES;
  const m = r();
  if (m < 0.2) return { bytes: bytes.subarray(0, Math.floor(r() * bytes.length)), intact: null };
  if (m < 0.35) v.setUint32(at, Math.floor(r() * 2 ** 32), true); // nlmsg_len
  else if (m < 0.5) v.setUint32(at, Math.floor(r() * 200), true);
  else if (m < 0.65) v.setUint16(at + 16 + 16, Math.floor(r() * 65536), true); // cn_msg.len
  else if (m < 0.75) v.setUint32(at + 36, Math.floor(r() * 2 ** 32), true); // what
  else if (m < 0.85) v.setUint16(at + 4, Math.floor(r() * 65536), true); // nlmsg_type
  else {
    for (let i = 0; i < 1 + r() * 8; i++) {
      bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
    }
  }
  return { bytes, intact: null };
}

/** Runs `cases` cases from `seed`; throws on the first property violation. */
export function fuzz(cases: number, seed = 1): { events: number; errors: number; unknown: number } {
  const r = prng(seed);
  const counts = { events: 0, errors: 0, unknown: 0 };
  const tree = new PidTree({ graceMs: 0, maxExited: 1000 });
  const processor = new EventProcessor({
    tree,
    reader: GONE_PROC,
    users: new Users(() => ""),
    clock: new WallClock(0),
    now: () => 0,
    sink: () => {},
  });
  const out: Decoded[] = [];
  for (let i = 0; i < cases; i++) {
    const { bytes, intact } = fuzzCase(r);
    out.length = 0;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    try {
      decodeDatagram(view, 0, bytes.length, out);
      processor.processBatch(out);
      if (i % 1000 === 0) tree.sweep(Number.MAX_SAFE_INTEGER);
    } catch (e) {
      throw new Error(
        `case ${i} (seed ${seed}) threw: ${(e as Error).stack}\nbytes: ${[...bytes].join(",")}`,
      );
    }
    if (out.length === 0) throw new Error(`case ${i}: no result for ${bytes.length} bytes`);
    for (const d of out) {
      if (!OK.has(d.what)) throw new Error(`case ${i}: unexpected result ${JSON.stringify(d)}`);
      if (d.what === "error") counts.errors++;
      else if (d.what === "unknown") counts.unknown++;
      else counts.events++;
    }
    if (intact) {
      if (!isDeepStrictEqual(out, intact)) {
        throw new Error(
          `case ${i}: intact datagrams misread: ${JSON.stringify(out)} vs ${
            JSON.stringify(intact)
          }`,
        );
      }
    }
  }
  return counts;
}

if (import.meta.main) {
  const cases = Number(Deno.args[0] ?? 1_000_000);
  const seed = Number(Deno.args[1] ?? 1);
  const t = performance.now();
  const c = fuzz(cases, seed);
  console.log(
    `${cases} cases, seed ${seed}: ${c.events} events, ${c.unknown} unknown, ${c.errors} typed errors, ` +
      `no exception (${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );
}
