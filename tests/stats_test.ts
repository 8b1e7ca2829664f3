import { assertEquals } from "@std/assert";
import { StatsClock } from "../cli/stats.ts";
import { WallClock } from "../lib/time.ts";

const counters = {
  events: 0,
  lost: 0,
  overrunsUncounted: 0,
  malformed: 0,
  unknown: 0,
  resyncs: 0,
  execsUnreadable: 0,
  execsNamedByFanotify: 0,
  execNameConflicts: 0,
  execsNotReachable: 0,
  execsArgvFromAudit: 0,
};
const tree = { live: 1, exited: 0, evictedByCap: 0, vanished: 0 };
const socket = { datagrams: 0, overruns: 0, foreign: 0, truncated: 0 };

Deno.test("stats: lines are due on the clock; a late one does not shift the rest", () => {
  const s = new StatsClock(1000);
  const clock = new WallClock(0);
  const at = (ms: number) => ms * 1e6;
  assertEquals(s.due(at(0)), false);
  assertEquals(s.due(at(999)), false);
  assertEquals(s.due(at(1000)), true);
  s.record(at(1700), clock, counters, tree, socket); // taken 700 ms late, under load
  assertEquals(s.due(at(1999)), false);
  assertEquals(s.due(at(2000)), true, "the next one is still due at 2 s, not 2.7 s");
  s.record(at(5500), clock, counters, tree, socket); // periods missed are skipped
  assertEquals(s.due(at(5999)), false);
  assertEquals(s.due(at(6000)), true);
  assertEquals(new StatsClock(0).due(at(1e6)), false);
});
