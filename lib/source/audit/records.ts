/**
 * Audit records → one {@linkcode AuditExec} per successful `execve`/`execveat`.
 *
 * The kernel writes an event's records one after another (`SYSCALL`, `EXECVE`…, `CWD`,
 * `PATH`…, `PROCTITLE`, then `EOE`), all with the event's serial; records of other events
 * may come in between. So records are gathered by serial, and an event is complete at its
 * `EOE`. An event that never completes (its `EOE` lost) is dropped after a while.
 *
 * @module
 */

import { AUDIT_MSG, decodeExecve, parseFields, parseHeader, untrustedString } from "./wire.ts";

/** What the audit stream says about one successful exec, exact at the moment of the call. */
export interface AuditExec {
  /** The process (its tgid). */
  pid: number;
  /** The event's serial. */
  serial: number;
  /** Wall time of the syscall's entry, in ms (coarse: it may lag by a clock tick). */
  timeMs: number;
  /** The arguments, byte-exact (`text.ts` decoding); null when a record could not be read. */
  argv: string[] | null;
  /** The program that runs (`exe=`), exact bytes; null when unreadable. */
  exe: string | null;
  /** The name at the end of the call (`comm=`); null when unreadable. */
  comm: string | null;
  /** The effective uid at the end of the call (a set-uid program's owner); null when absent. */
  euid: number | null;
  /** The working directory of the call (`CWD`); null when absent. */
  cwd: string | null;
}

interface Partial {
  syscall: Map<string, string> | null;
  execve: Map<string, string>[];
  cwd: string | null;
  timeMs: number;
  /** When the first record arrived (the caller's clock), for dropping incomplete events. */
  seenMs: number;
}

/** An event with no `EOE` after this long is dropped (its records were lost). */
export const INCOMPLETE_AFTER_MS = 5_000;

/** Counters. */
export interface AssemblerStats {
  /** Records read. */
  records: number;
  /** Exec events completed. */
  execs: number;
  /** Events dropped without their `EOE`. */
  incomplete: number;
  /** Records whose text could not be parsed. */
  malformed: number;
}

function uidOf(text: string | undefined): number | null {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
}

/** Gathers records by serial; see the module doc. */
export class AuditAssembler {
  #open = new Map<number, Partial>();
  #execSyscalls: ReadonlySet<number>;
  /** Running totals. */
  readonly stats: AssemblerStats = { records: 0, execs: 0, incomplete: 0, malformed: 0 };

  /** `execSyscalls`: the numbers of `execve` and `execveat` on this architecture. */
  constructor(execSyscalls: readonly number[]) {
    this.#execSyscalls = new Set(execSyscalls);
  }

  /** One record; returns the exec it completes, if any. */
  record(type: number, text: string, nowMs: number): AuditExec | null {
    this.stats.records++;
    const h = parseHeader(text);
    if (!h) {
      this.stats.malformed++;
      return null;
    }
    if (type === AUDIT_MSG.EOE) return this.#complete(h.serial);
    if (type !== AUDIT_MSG.SYSCALL && type !== AUDIT_MSG.EXECVE && type !== AUDIT_MSG.CWD) {
      return null;
    }
    let p = this.#open.get(h.serial);
    if (!p) {
      if (type !== AUDIT_MSG.SYSCALL) return null; // not an event proctree follows
      const fields = parseFields(text, h.bodyAt);
      if (!this.#isExec(fields)) return null;
      p = { syscall: fields, execve: [], cwd: null, timeMs: h.timeMs, seenMs: nowMs };
      this.#open.set(h.serial, p);
      return null;
    }
    const fields = parseFields(text, h.bodyAt);
    if (type === AUDIT_MSG.EXECVE) p.execve.push(fields);
    else if (type === AUDIT_MSG.CWD) p.cwd = untrustedString(fields.get("cwd"));
    return null;
  }

  #isExec(f: Map<string, string>): boolean {
    return f.get("success") === "yes" && this.#execSyscalls.has(Number(f.get("syscall")));
  }

  #complete(serial: number): AuditExec | null {
    const p = this.#open.get(serial);
    if (!p) return null;
    this.#open.delete(serial);
    const pid = Number(p.syscall?.get("pid"));
    if (!p.syscall || !Number.isInteger(pid) || pid <= 0 || p.execve.length === 0) return null;
    this.stats.execs++;
    return {
      pid,
      serial,
      timeMs: p.timeMs,
      argv: decodeExecve(p.execve),
      exe: untrustedString(p.syscall.get("exe")),
      comm: untrustedString(p.syscall.get("comm")),
      euid: uidOf(p.syscall.get("euid")),
      cwd: p.cwd,
    };
  }

  /** Drops every event still open (after a loss: their records may be missing). */
  clear(): void {
    this.#open.clear();
  }

  /** Drops events that never completed. */
  sweep(nowMs: number): void {
    for (const [serial, p] of this.#open) {
      if (nowMs - p.seenMs > INCOMPLETE_AFTER_MS) {
        this.#open.delete(serial);
        this.stats.incomplete++;
      }
    }
  }
}
