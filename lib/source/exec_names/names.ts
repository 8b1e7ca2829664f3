/**
 * Names for exec events from the files `execve` opened (fanotify `FAN_OPEN_EXEC`), matched
 * by pid and order — never by guess.
 *
 * One `execve` opens its file, then whatever that file names: a `#!` script its
 * interpreter, an ELF its dynamic loader (`header.ts`). The opens of one pid are
 * split into such **attempts**; an attempt still waiting for its interpreter when the
 * pid's next open is a different file failed (the interpreter was missing, or `execve`
 * failed after opening). A file that is neither script nor ELF fails with ENOEXEC (or,
 * where binfmt_misc handlers exist, may run: then nothing is claimed).
 *
 * Matching relies on one ordering fact: the kernel queues an exec's opens before it sends
 * the exec event, so once the connector has been drained and then fanotify, every exec
 * event read has all its opens read too. For a pid with k exec events in a batch, the
 * complete attempts read so far must then be exactly k, in order: any other count (a
 * failure that opened a valid file, an exec fanotify cannot see such as a memfd, a merged
 * event) names none of them. After a queue overflow nothing is named for a while.
 *
 * @module
 */

import type { ExecHeader } from "./header.ts";
import type { Decoded } from "../../event/wire.ts";

export { NOT_HERE } from "../../tree/proc_parse.ts";

/** What fanotify says an exec ran. */
export interface ExecName {
  /** The program that runs: `/proc/<pid>/exe` (for a script, its interpreter). */
  exe: string;
  /** The script's path, for a `#!` exec; else null. */
  script: string | null;
}

interface Attempt {
  /** The first file: the script, for a `#!` exec. */
  first: string;
  firstIsScript: boolean;
  /** The last file opened that is not a dynamic loader: what runs. */
  exe: string | null;
  /** The interpreter path the kernel opens next; null: complete. */
  expect: string | null;
  /** `expect` is a `PT_INTERP` (the loader: needs no header, never the exe). */
  expectLoader: boolean;
  /** Its interpreter was never opened: the `execve` failed. */
  failed: boolean;
  /** A file a binfmt_misc handler may have run: nothing can be claimed for this pid. */
  unsure: boolean;
}

interface PidOpens {
  attempts: Attempt[];
  /** When an open was last added (ms, the caller's clock), for sweeping. */
  lastMs: number;
}

/** Counters for stats lines and tests. */
export interface ExecNameStats {
  /** Opens read. */
  opens: number;
  /** Exec events named. */
  named: number;
  /** Exec events left unnamed because the count of attempts did not match. */
  ambiguous: number;
  /** Attempts recognised as failed `execve`s. */
  failed: number;
  /** Opens closed unread: another source named their exec exactly (the source counts them). */
  unread: number;
}

/** Most interpreter paths whose resolution is cached. */
const MAX_RESOLVED = 1024;
/** After an overflow, no exec is named for this long (its opens may have been dropped). */
export const OVERFLOW_BLIND_MS = 2_000;

/** Opens of a pid that no exec or exit claimed are dropped after this long. */
export const STALE_OPENS_MS = 30_000;

const NONE: ReadonlyMap<number, ExecName> = new Map();

/** Pairs exec events with the opens of their `execve`; see the module doc. */
export class ExecNames {
  #byPid = new Map<number, PidOpens>();
  #resolve: (path: string) => string | null;
  #resolved = new Map<string, string | null>();
  /** binfmt_misc handlers are registered (kept current by the source). */
  binfmtMisc: boolean;
  /** Until when (ms, the callers' clock) no exec is named: opens may be missing since an overflow. */
  #blindUntilMs = -Infinity;
  /** Running totals. */
  readonly stats: ExecNameStats = { opens: 0, named: 0, ambiguous: 0, failed: 0, unread: 0 };

  /**
   * `resolve`: a path with its symlinks resolved (`realpath`), to recognise the
   * interpreter a file names when the kernel opened it through a link. `binfmtMisc`:
   * handlers are registered, so a file that is neither script nor ELF may still run.
   */
  constructor(resolve: (path: string) => string | null, binfmtMisc: boolean) {
    this.#resolve = resolve;
    this.binfmtMisc = binfmtMisc;
  }

  /** Whether the open of `path` by `pid` needs its header read: not for the loader it waits for. */
  needsHeader(pid: number, path: string): boolean {
    const a = this.#current(pid);
    return !(a && a.expect !== null && a.expectLoader && this.#isInterp(a.expect, path));
  }

  /** `pid`'s `execve` opened `path`; `header`: what the file makes the kernel do (null: not read). */
  open(pid: number, path: string, header: ExecHeader | null, nowMs: number): void {
    this.stats.opens++;
    let p = this.#byPid.get(pid);
    if (!p) this.#byPid.set(pid, p = { attempts: [], lastMs: nowMs });
    p.lastMs = nowMs;
    const a = p.attempts[p.attempts.length - 1];
    if (a && a.expect !== null && !a.failed) {
      if (this.#isInterp(a.expect, path)) {
        if (a.expectLoader) a.expect = null; // the loader: not what runs, names nothing more
        else this.#follow(a, path, header);
        return;
      }
      a.failed = true;
      this.stats.failed++;
    }
    const next: Attempt = {
      first: path,
      firstIsScript: header?.kind === "script",
      exe: null,
      expect: null,
      expectLoader: false,
      failed: false,
      unsure: false,
    };
    this.#follow(next, path, header);
    p.attempts.push(next);
  }

  /**
   * fanotify dropped events at `nowMs`: the opens of execs whose events are not read yet may
   * be among them, so no count can be trusted for {@linkcode OVERFLOW_BLIND_MS}.
   */
  overflow(nowMs: number): void {
    this.#byPid.clear();
    this.#blindUntilMs = nowMs + OVERFLOW_BLIND_MS;
  }

  /**
   * Names the exec events of a drained batch (by batch index; missing: not named). Call
   * after the connector and then fanotify were drained. Processes whose exit ends the
   * batch take their leftover opens with them.
   */
  resolve(batch: readonly Decoded[], nowMs: number): ReadonlyMap<number, ExecName> {
    // Most batches of a busy host hold no opens to pair (they were paired already).
    if (this.#byPid.size === 0) return NONE;
    const out = new Map<number, ExecName>();
    const execs = new Map<number, number[]>();
    const ended = new Set<number>();
    for (let i = 0; i < batch.length; i++) {
      const ev = batch[i];
      if (ev.what === "exec") {
        const list = execs.get(ev.tgid);
        if (list) list.push(i);
        else execs.set(ev.tgid, [i]);
        ended.delete(ev.tgid);
      } else if (ev.what === "exit" && ev.pid === ev.tgid) ended.add(ev.tgid);
      else if (ev.what === "fork" && ev.pid === ev.tgid) ended.delete(ev.pid);
    }
    const blind = nowMs <= this.#blindUntilMs;
    for (const [pid, indices] of execs) {
      const p = this.#byPid.get(pid);
      if (!p || blind) {
        this.#byPid.delete(pid);
        continue;
      }
      const done = p.attempts.filter((a) => !a.failed && a.expect === null);
      if (done.length === indices.length && !p.attempts.some((a) => a.unsure)) {
        for (let j = 0; j < done.length; j++) {
          const a = done[j];
          out.set(indices[j], { exe: a.exe!, script: a.firstIsScript ? a.first : null });
        }
        this.stats.named += done.length;
        // What follows the last match is a later exec's, still being opened.
        const last = p.attempts.lastIndexOf(done[done.length - 1]);
        p.attempts.splice(0, last + 1);
        if (p.attempts.length === 0) this.#byPid.delete(pid);
      } else {
        this.stats.ambiguous += indices.length;
        this.#byPid.delete(pid);
      }
    }
    for (const pid of ended) this.#byPid.delete(pid);
    return out;
  }

  /** Drops the opens of pids that nothing claimed for {@linkcode STALE_OPENS_MS}. */
  sweep(nowMs: number): void {
    for (const [pid, p] of this.#byPid) {
      if (nowMs - p.lastMs > STALE_OPENS_MS) this.#byPid.delete(pid);
    }
  }

  /** Pids with opens held (for tests and stats). */
  get pending(): number {
    return this.#byPid.size;
  }

  #current(pid: number): Attempt | undefined {
    const list = this.#byPid.get(pid)?.attempts;
    return list?.[list.length - 1];
  }

  /** Records what `path` (just opened for attempt `a`) makes the kernel open next. */
  #follow(a: Attempt, path: string, header: ExecHeader | null): void {
    if (header?.kind === "script") {
      a.expect = header.interp;
      a.expectLoader = false;
    } else if (header?.kind === "elf") {
      a.exe = path;
      a.expect = header.interp;
      a.expectLoader = header.interp !== null;
    } else {
      // Unreadable or neither: ENOEXEC, unless a binfmt_misc handler runs it.
      a.exe = null;
      a.expect = null;
      if (this.binfmtMisc) a.unsure = true;
      else {
        a.failed = true;
        this.stats.failed++;
      }
    }
  }

  /** Whether the opened `path` is the interpreter `expected` (after symlinks). */
  #isInterp(expected: string, path: string): boolean {
    if (expected === path) return true;
    if (expected[0] !== "/") return false;
    if (this.#resolved.get(expected) === path) return true;
    // Not cached, or a link changed since (a package upgrade): resolve again.
    if (this.#resolved.size >= MAX_RESOLVED) this.#resolved.clear();
    const r = this.#resolve(expected);
    this.#resolved.set(expected, r);
    return r === path;
  }
}
