/**
 * The human view of `watch --format text` and `run`: one line per event, indented by
 * depth, with every name passed through `terminalSafe` so no process can write control
 * sequences to the operator's terminal.
 *
 * @module
 */

import type { WatchRecord } from "../record/record.ts";
import type { ProcessTree, ProcNode } from "../tree/tree.ts";
import { terminalSafe } from "../text.ts";

/** Deepest indentation of the text views, in levels: deeper lines stay at this level. */
export const MAX_INDENT = 24;

/** Quotes one argument for display when it is empty or holds spaces or quotes. */
export function displayArg(a: string): string {
  const s = terminalSafe(a);
  return s === "" || /[\s'"]/.test(s) ? JSON.stringify(s) : s;
}

/**
 * How to name a process in one line: its argv; else, in brackets (a name, not what it was
 * run with), its comm or its executable's name; else `<unknown>`.
 */
export function displayName(
  argv: readonly string[] | null | undefined,
  comm: string | null | undefined,
  exe?: string | null,
): string {
  if (argv && argv.length) return argv.map(displayArg).join(" ");
  if (comm) return `[${terminalSafe(comm)}]`;
  if (exe) return `[${terminalSafe(exe.slice(exe.lastIndexOf("/") + 1))}]`;
  return "<unknown>";
}

/** Formats records as text lines. */
export class TextFormatter {
  #tree: ProcessTree;
  #roots?: ((n: ProcNode) => boolean)[];

  /** Indents by depth in `tree`, counted from the first ancestor that `roots` match. */
  constructor(tree: ProcessTree, roots?: ((n: ProcNode) => boolean)[]) {
    this.#tree = tree;
    this.#roots = roots;
  }

  #depth(node: ProcNode | null): number {
    if (!node) return 0;
    // Indentation stops at MAX_INDENT: no need to walk further up.
    const chain = this.#tree.chain(node, MAX_INDENT + 1);
    if (this.#roots) {
      const roots = this.#roots;
      const i = chain.findIndex((n) => roots.some((m) => m(n)));
      if (i >= 0) return Math.min(i, MAX_INDENT);
    }
    return Math.min(chain.length - 1, MAX_INDENT);
  }

  /** One text line for `rec`. */
  format(rec: WatchRecord, node: ProcNode | null): string {
    const time = rec.time.slice(11, 26);
    const head = `${time} ${rec.event.padEnd(8)}`;
    if (rec.pid === undefined) {
      const rest = Object.entries(rec)
        .filter(([k]) => k !== "event" && k !== "time")
        .map(([k, v]) => `${k}=${terminalSafe(String(v))}`)
        .join(" ");
      return `${head} ${rest}`;
    }
    const pid = String(rec.pid).padStart(7) + (rec.tid !== undefined ? `/${rec.tid}` : "");
    const indent = "  ".repeat(this.#depth(node));
    const exe = rec.exe ?? node?.exe;
    const name = displayName(null, rec.comm, exe);
    let detail: string;
    switch (rec.event) {
      case "fork":
        detail = `${name} forked by ${rec.ppid ?? "?"}`;
        break;
      case "exec":
        detail = displayName(rec.argv, rec.comm, exe);
        break;
      case "exit":
        detail = `${name} ` +
          (rec.signal
            ? `killed by ${rec.signal}${rec.core_dumped ? " (core dumped)" : ""}`
            : `exit ${rec.exit_code}`);
        break;
      case "comm":
        detail = `renamed ${name}`;
        break;
      case "uid":
      case "gid":
        detail = `${name} ${rec.event} ${rec.real}/${rec.effective}`;
        break;
      case "file":
        // Under the process that made the change, one level deeper than its own lines.
        detail = `  ${name} ${rec.action}${rec.dir ? " dir" : ""} ` +
          displayArg(rec.path ?? "?") + (rec.to !== undefined ? ` → ${displayArg(rec.to)}` : "");
        break;
      case "ptrace":
        detail = `${name} ${rec.tracer_pid ? `traced by ${rec.tracer_pid}` : "detached"}`;
        break;
      default:
        detail = name;
    }
    return `${head} ${pid} ${indent}${detail}`;
  }
}

/** `1 process`, `2 processes`. */
export function count(n: number, noun: string, plural = noun + "es"): string {
  return `${n} ${n === 1 ? noun : plural}`;
}
