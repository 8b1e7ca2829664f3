/**
 * Warming the pipeline before the first real event. Cold, the first real batch took
 * ~1.5 ms, long enough for a short-lived child (`ls`) to exit unread; warm, it takes tens
 * of microseconds. So a session runs decode → `/proc` read → tree → record → JSON a few
 * hundred times on datagrams about the process itself, encoded with `encode.ts`.
 *
 * @module
 */

import { type Decoded, decodeDatagram } from "../event/wire.ts";
import { DATAGRAM_BYTES, encodeEventInto } from "../event/encode.ts";
import { EventProcessor } from "./processor.ts";
import type { ProcReader } from "../tree/proc_parse.ts";
import { toJsonLine } from "../record/record.ts";
import { WallClock } from "../time.ts";
import { PidTree } from "../tree/tree.ts";
import { Users } from "../tree/users.ts";

/** Runs `rounds` fork/exec/exit rounds about process `self`, read through `reader`. */
export function warmUp(reader: ProcReader, now: () => number, self: number, rounds = 300): void {
  const p = new EventProcessor({
    tree: new PidTree(),
    reader,
    users: new Users(() => ""),
    clock: new WallClock(0),
    now,
    sink: (r) => toJsonLine(r),
  });
  const bytes = new Uint8Array(DATAGRAM_BYTES * 3);
  const view = new DataView(bytes.buffer);
  const base = { ack: 0, cpu: 0, timestampNs: 1, pid: self, tgid: self };
  const batch: Decoded[] = [];
  const handlers = p.loopHandlers();
  for (let i = 0; i < rounds; i++) {
    const seq = i * 3;
    encodeEventInto(view, 0, { ...base, seq, what: "fork", parentPid: 1, parentTgid: 1 });
    encodeEventInto(view, DATAGRAM_BYTES, { ...base, seq: seq + 1, what: "exec" });
    encodeEventInto(view, DATAGRAM_BYTES * 2, {
      ...base,
      seq: seq + 2,
      what: "exit",
      exitCode: 0,
      exitSignal: 17,
      parentPid: 1,
      parentTgid: 1,
    });
    batch.length = 0;
    for (let k = 0; k < 3; k++) {
      decodeDatagram(view, k * DATAGRAM_BYTES, DATAGRAM_BYTES, batch);
      handlers.decoded!(batch, k, false);
    }
    handlers.batch(batch, true);
  }
}
