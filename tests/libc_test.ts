import { assert } from "@std/assert";
import { Clock, clockNs } from "../ffi/libc.ts";

Deno.test("libc: clocks read as nanoseconds, both halves of tv_sec and tv_nsec", () => {
  const wallNs = clockNs(Clock.REALTIME);
  // A read that dropped a half of tv_sec, or took tv_nsec for it, lands nowhere near now.
  assert(Math.abs(wallNs / 1e6 - Date.now()) < 1000, `${wallNs} ns is not now`);
  const a = clockNs(Clock.MONOTONIC);
  const b = clockNs(Clock.MONOTONIC);
  assert(a > 0 && b >= a, "monotonic");
  // Boot time is monotonic time plus time suspended: never less, read after it.
  const monoNs = clockNs(Clock.MONOTONIC);
  assert(clockNs(Clock.BOOTTIME) >= monoNs, "boot time");
});
