import { assertEquals } from "@std/assert";
import { decodeWaitStatus, shellStatus } from "../lib/event/wait_status.ts";

Deno.test("wait status: normal exit 3", () => {
  const ws = decodeWaitStatus(3 << 8);
  assertEquals(ws, { exitCode: 3, signal: null, signalNumber: null, coreDumped: false });
  assertEquals(shellStatus(ws), 3);
});

Deno.test("wait status: killed by SIGKILL", () => {
  const ws = decodeWaitStatus(9);
  assertEquals(ws, { exitCode: null, signal: "SIGKILL", signalNumber: 9, coreDumped: false });
  assertEquals(shellStatus(ws), 137);
});

Deno.test("wait status: SIGSEGV with core, real-time signal", () => {
  assertEquals(decodeWaitStatus(11 | 0x80).coreDumped, true);
  assertEquals(decodeWaitStatus(11 | 0x80).signal, "SIGSEGV");
  assertEquals(decodeWaitStatus(40).signal, "SIG40");
});
