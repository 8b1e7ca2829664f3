import { assert, assertEquals, assertMatch } from "@std/assert";
import { readFileText } from "../ffi/procfs.ts";

const PID_MAX = "/proc/sys/kernel/pid_max";
import { hasCommand, noKernel } from "./kernel.ts";

const haveCc = hasCommand("cc");

Deno.test({
  name: "bench: the storm runner works end to end (1 000 processes, proctree only)",
  ignore: noKernel !== null || !haveCc,
}, async () => {
  const pidMaxBefore = readFileText(PID_MAX);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../scripts/bench_storm.ts", import.meta.url).pathname,
      "--runs",
      "1",
      "--tools",
      "proctree",
      "--storms",
      "1",
      "--scale",
      "0.1",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert(out.success, new TextDecoder().decode(out.stderr));
  // Numbers vary; only the shape and the completeness are checked here.
  assertMatch(
    text,
    /\| 10k fork\+exec, 2 workers \| proctree \| 100\.0 % \| 100\.0 % \| 100\.0 % \| 100\.0 % \| [\d.]+ % \| [\d.]+ % \| 0 \| 100\.0 % \| 0 \| 0 \|/,
  );
  assertEquals(readFileText(PID_MAX), pidMaxBefore, "pid_max is restored");
});

Deno.test("bench: the pipeline benchmark runs and prints every event's line", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../scripts/pipeline_bench.ts", import.meta.url).pathname,
      "--processes",
      "300",
      "--rounds",
      "1",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  assertMatch(new TextDecoder().decode(out.stdout), /median [\d.]+ µs\/event \(900 events/);
});
