// Every command the README shows is run as a reader would paste it, so the README cannot
// drift from what works. Commands are taken from the file itself: `$ ` lines of console
// blocks and the lines of sh blocks. `proctree` is the installed command (installed here
// into a temporary prefix, as `deno task install` does), `npx -y deno@2.9.6` is this Deno.
import { assert } from "@std/assert";
import { haveBundle, noKernel, sleep, startProctree } from "./kernel.ts";

const root = new URL("..", import.meta.url).pathname;
const NPX_DENO = "npx -y deno@2.9.6";

/** Commands not run here, and why (printed, so a skip is never silent). */
const NOT_RUN: [RegExp, string][] = [
  [/task test$/, "the test command itself"],
  [/^sudo scripts\/install\.sh --systemd/, "installs a systemd unit on the host"],
  [/^echo \$\?$/, "shows the previous command's status"],
];

/** Commands that run until stopped: SIGINT after a few seconds must end them with 0. */
const LONG_RUNNING = /(task watch| watch)( |$)/;

/** The commands of the README's console and sh blocks, continuation lines joined. */
export function readmeCommands(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/```(console|sh)\n([\s\S]*?)```/g)) {
    const lines = m[2].split("\n");
    let pending = "";
    for (const raw of lines) {
      let line = raw;
      if (m[1] === "console") {
        if (!pending && !line.startsWith("$ ")) continue;
        if (!pending) line = line.slice(2);
      } else if (!pending && (line.trim() === "" || line.trimStart().startsWith("#"))) continue;
      if (line.endsWith("\\")) {
        pending += line.slice(0, -1) + " ";
        continue;
      }
      out.push((pending + line).trim());
      pending = "";
    }
  }
  return out;
}

const commands = readmeCommands(await Deno.readTextFile(`${root}README.md`));
const ignore = noKernel !== null || !haveBundle;
if (!haveBundle) console.log("README commands ignored: no dist/proctree.js (run deno task bundle)");
for (const [re, why] of NOT_RUN) {
  for (const c of commands.filter((c) => re.test(c))) console.log(`README: not run (${why}): ${c}`);
}

async function shell(cmd: string, cwd: string, binDir: string) {
  const long = LONG_RUNNING.test(cmd) && !cmd.includes("jq");
  // In a session of its own, so SIGINT reaches every process of the command (npx or deno
  // task and the proctree under it), as Ctrl-C in a terminal would.
  const child = new Deno.Command("setsid", {
    args: ["bash", "-c", `export PATH="${binDir}:$PATH"; ${cmd}`],
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let stderr = "";
  const errDone = (async () => {
    for await (const chunk of child.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  const outText = new Response(child.stdout).text();
  if (long) {
    // Stopped once it says it is listening (start-up takes seconds on a busy machine).
    for (let i = 0; i < 300 && !stderr.includes("proctree: listening"); i++) await sleep(100);
    await sleep(500);
    await new Deno.Command("kill", { args: ["-INT", "--", `-${child.pid}`] }).output();
  }
  const status = await child.status;
  await errDone;
  return { code: status.code, stdout: await outText, stderr, long };
}

Deno.test({ name: "README: every command works as pasted", ignore }, async () => {
  assert(commands.length >= 10, `found only ${commands.length} commands`);
  const prefix = await Deno.makeTempDir();
  const logs = await Deno.makeTempDir();
  try {
    const deno = Deno.execPath();
    const install = await new Deno.Command("bash", {
      args: [`${root}scripts/install.sh`, "--prefix", prefix],
      env: { DENO: deno },
      stdout: "null",
      stderr: "piped",
    }).output();
    assert(install.success, new TextDecoder().decode(install.stderr));
    // A real log for the jq cookbook.
    const w = await startProctree(["watch", "-o", `${logs}/events.jsonl`, "--stats", "1"]);
    await new Deno.Command("sh", { args: ["-c", "sleep 0.1; false; exit 0"] }).output();
    await new Promise((r) => setTimeout(r, 1200));
    await w.stop("SIGINT");
    const failures: string[] = [];
    for (const pasted of commands) {
      if (NOT_RUN.some(([re]) => re.test(pasted))) continue;
      let cmd = pasted.replaceAll(NPX_DENO, `"${deno}"`);
      // The install task installs under /usr/local; here under a temporary prefix.
      if (/task install$/.test(cmd)) cmd += ` --prefix ${prefix}`;
      const r = await shell(cmd, cmd.includes("events.jsonl") ? logs : root, `${prefix}/bin`);
      // Ctrl-C through a task runner: proctree exits 0, the runner reports 130 (README).
      const stopped = r.code === 0 || (r.code === 130 && / task /.test(cmd));
      const bad = [2, 126, 127].includes(r.code) || (r.long && !stopped) ||
        /command not found|No such file|unknown option|expects|internal error/.test(r.stderr);
      if (bad) failures.push(`${pasted}\n  exit ${r.code}: ${r.stderr.trim().slice(0, 400)}`);
    }
    assert(failures.length === 0, `README commands that fail:\n${failures.join("\n")}`);
  } finally {
    await Deno.remove(prefix, { recursive: true });
    await Deno.remove(logs, { recursive: true });
  }
});

Deno.test("README: command extraction joins continuations and skips output", () => {
  const text = "```console\n$ a b\noutput\n$ c \\\n  d\n```\n```sh\n# note\ne\n```\n";
  const got = readmeCommands(text);
  assert(JSON.stringify(got) === JSON.stringify(["a b", "c    d", "e"]), JSON.stringify(got));
});
