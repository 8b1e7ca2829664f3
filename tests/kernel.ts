/**
 * Helpers for tests against the real kernel: run `proctree` as a subprocess, wait for its
 * "listening" line, stop it, parse its lines. Tests that need the connector are ignored,
 * with the reason printed, where subscribing is not permitted.
 *
 * @module
 */

import { ProcConnector } from "../ffi/source/connector.ts";
import type { WatchRecord } from "../lib/record/record.ts";

export { PROCTREE } from "../scripts/command.ts";
import { PROCTREE } from "../scripts/command.ts";

function probe(): string | null {
  try {
    const c = ProcConnector.open({ ackTimeoutMs: 2000 });
    c.close();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Why kernel tests cannot run here, or null when they can. */
export const noKernel: string | null = probe();
if (noKernel) console.log(`kernel tests ignored: ${noKernel}`);

/** A running proctree process. */
export interface Running {
  child: Deno.ChildProcess;
  /** stderr so far. */
  stderr(): string;
  /** stdout so far. */
  stdout(): string;
  /** Sends `signal` (default SIGTERM) and collects everything. */
  stop(
    signal?: Deno.Signal,
  ): Promise<{ code: number; records: WatchRecord[]; stdout: string; stderr: string }>;
}

const decoder = new TextDecoder();

/**
 * Starts `proctree <args>` and resolves once it printed "proctree: listening". `wrap`: a
 * command that starts proctree (e.g. `setpriv` with fewer capabilities).
 */
export async function startProctree(
  args: string[],
  timeoutMs = 15000,
  wrap: string[] = [],
): Promise<Running> {
  const argv = [...wrap, ...PROCTREE, ...args];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let err = "";
  let out = "";
  const outDone = (async () => {
    for await (const chunk of child.stdout) out += decoder.decode(chunk, { stream: true });
  })();
  const { promise: ready, resolve: listening } = Promise.withResolvers<void>();
  const errDone = (async () => {
    for await (const chunk of child.stderr) {
      err += decoder.decode(chunk, { stream: true });
      if (err.includes("proctree: listening")) listening();
    }
    listening();
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([ready, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
  if (!err.includes("proctree: listening")) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await Promise.all([outDone, errDone, child.status]);
    throw new Error(`proctree did not start listening: ${err}`);
  }
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      const status = await child.status;
      await Promise.all([outDone, errDone]);
      // Lines of --format text are not JSON: records are parsed only for JSON output.
      const records = out.startsWith("{") ? parseLines(out) : [];
      return { code: status.code, records, stdout: out, stderr: err };
    },
  };
}

/** Parses JSON lines; throws on a line that is not one JSON object. */
export function parseLines(text: string): WatchRecord[] {
  return text.split("\n").filter((l) => l.length).map((l) => {
    const v = JSON.parse(l);
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new Error(`not an object: ${l}`);
    }
    return v as WatchRecord;
  });
}

/** The shipped single file (`deno task bundle`); CI builds it before the tests. */
export const BUNDLE: string = new URL("../dist/proctree.js", import.meta.url).pathname;

/** Whether {@linkcode BUNDLE} exists. */
export const haveBundle: boolean = (() => {
  try {
    return Deno.statSync(BUNDLE).isFile;
  } catch {
    return false;
  }
})();

/** Whether a program is on PATH. */
export function hasCommand(name: string): boolean {
  return new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null" }).outputSync()
    .success;
}

/**
 * Compiles a test helper from `tests/c/NAME.c` (NAME may be a relative path, e.g. to the
 * storm's programs) with cc; null (and why, printed) if it cannot.
 */
export async function compileHelper(name: string, flags: string[] = []): Promise<string | null> {
  const path = `${await Deno.makeTempDir()}/${name.split("/").pop()}`;
  const src = new URL(`./c/${name}.c`, import.meta.url).pathname;
  try {
    const r = await new Deno.Command("cc", {
      args: ["-O2", "-o", path, src, ...flags],
      stderr: "piped",
    }).output();
    if (r.success) return path;
    console.log(`${name} tests ignored: cc failed: ${new TextDecoder().decode(r.stderr)}`);
  } catch {
    console.log(`${name} tests ignored: no C compiler (cc)`);
  }
  return null;
}

/** What `run --summary` wrote (see `cli/run.ts`). */
export interface RunSummary {
  exit_status: number;
  complete: boolean;
  totals: { processes: number; failed: number; killed: number; lost_events: number };
  tree: import("../lib/report/subtree.ts").SubtreeEntry;
}

/** Runs `proctree run -q --no-tree --summary TMP -- CMD…`; its status, stderr and summary. */
export async function runWithSummary(
  cmd: string[],
): Promise<{ code: number; stderr: string; doc: RunSummary }> {
  const summary = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const r = await new Deno.Command(PROCTREE[0], {
      args: [...PROCTREE.slice(1), "run", "-q", "--no-tree", "--summary", summary, "--", ...cmd],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(r.stderr);
    return { code: r.code, stderr, doc: JSON.parse(await Deno.readTextFile(summary)) };
  } finally {
    await Deno.remove(summary);
  }
}

/**
 * Runs `fn` while two busy loops keep both CPUs loaded, as on a busy host: the reader then
 * runs later after each event, which widens the races integrity tests look for.
 */
export async function underLoad<T>(fn: () => Promise<T>): Promise<T> {
  const busy = [0, 1].map(() =>
    new Deno.Command("sh", { args: ["-c", "while :; do :; done"] }).spawn()
  );
  try {
    return await fn();
  } finally {
    for (const b of busy) b.kill("SIGKILL");
    await Promise.all(busy.map((b) => b.status));
  }
}

/** Waits `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs a command to completion; returns its pid and status. */
export async function spawnAndWait(
  cmd: string,
  args: string[],
): Promise<{ pid: number; status: Deno.CommandStatus }> {
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "null" })
    .spawn();
  return { pid: child.pid, status: await child.status };
}

/** Lines of one process, by kind. */
export function of(records: WatchRecord[], pid: number, event?: string): WatchRecord[] {
  return records.filter((r) => r.pid === pid && (event === undefined || r.event === event));
}
