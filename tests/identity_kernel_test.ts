// An exec line never carries what the process changed about itself after the exec: a
// rename voids the name and argv read, a uid change the uid read (issue 13).
import { assert, assertEquals } from "@std/assert";
import { compileHelper, noKernel, sleep, startProctree, underLoad } from "./kernel.ts";

const helper = await compileHelper("rename");
const ignore = noKernel !== null || helper === null;

Deno.test(
  { name: "kernel: programs that rename themselves and drop uid: 0 wrong", ignore },
  async () => {
    const w = await startProctree(["watch", "--events", "exec"]);
    await underLoad(() =>
      new Deno.Command("sh", { args: ["-c", `for i in $(seq 300); do ${helper}; done`] }).output()
    );
    await sleep(500);
    const { records } = await w.stop();
    const execs = records.filter((r) => r.event === "exec" && r.ppid !== undefined).filter((r) =>
      r.exe === helper || r.argv?.[0] === helper || r.comm === "rename" || r.comm === "renamed" ||
      r.argv?.[0]?.startsWith("RRR")
    );
    assert(execs.length >= 250, `saw ${execs.length} of 300 execs`);
    // What the kernel ran: argv [helper], comm "rename", uid 0. Null is honest; anything
    // else is a later state of the process.
    const wrong = execs.filter((r) =>
      (r.argv !== null && r.argv?.[0] !== helper) ||
      (r.comm !== null && r.comm !== "rename") || (r.uid !== null && r.uid !== 0)
    );
    assertEquals(wrong.length, 0, JSON.stringify(wrong[0]));
  },
);
