/**
 * File changes from fanotify's FID-mode events: each event names a directory by its file
 * handle and an entry by its name, so a path is the directory's path plus the name. This
 * module keeps the directory paths (a cache seeded by walking the watched paths and kept
 * current from the events themselves: a directory created, renamed or deleted) and turns
 * events into {@linkcode FileChange}s under the watched paths. Pure: the caller supplies
 * the two kernel lookups.
 *
 * A delete is reported with its full path even after its directory is gone (`rm -rf`): the
 * cache knew the directory before. A directory the cache does not know is looked up once
 * (`open_by_handle_at`), and remembered either way. A new directory is walked from the
 * event's own handle, never by its path (which may name another directory, or a symlink,
 * by the time the event is read).
 *
 * A lookup gives a directory's path when it is read, not when the change was made: a
 * directory made outside the watched paths, filled, then moved in, is looked up inside
 * them. So a change named through a lookup is held, and every change after it, until the
 * source has read the queue empty (every event made before the lookup is then handled):
 * the renames handled after it are undone on its path, newest first — a change that was
 * outside then is dropped — and the held changes go out in order ({@linkcode FileEvents.settle}).
 *
 * @module
 */

import { FAN_EVENT, type FanHandle, type FidEvent } from "../fanotify_wire.ts";
import { decodeBytes } from "../../text.ts";

/**
 * What happened to a file or directory; `found`: an entry of a directory moved in from
 * outside the watched paths, as the walk found it when the move was read.
 */
export type FileAction = "create" | "write" | "delete" | "rename" | "attrib" | "found";

/** One change under a watched path. */
export interface FileChange {
  /** What happened. */
  action: FileAction;
  /** The absolute path (for a rename, the old one); exact bytes as in `text.ts`. */
  path: string;
  /** A rename's new path. */
  to?: string;
  /**
   * The kernel reported this create and a delete of the same name as one event: which came
   * first, and where among the other changes, is not known.
   */
  merged?: true;
  /**
   * A rename from or to outside the watched paths: the outside side (`path` or `to`) is
   * named as it was when the line was read (a lookup of its directory then), not at the
   * rename — it may have been renamed since.
   */
  namedAtRead?: "path" | "to";
  /**
   * A directory moved in from outside: how many `found` lines follow, listing what was in
   * it when proctree walked it; `foundCut`, the walk stopped at its bound (more was there).
   */
  found?: number;
  /** See {@linkcode FileChange.found}. */
  foundCut?: true;
  /** The object is a directory. */
  dir: boolean;
  /** The process that made the change. */
  pid: number;
  /**
   * When, as far as anyone can know (fanotify carries no time): after `afterNs` and no
   * later than `beforeNs`, CLOCK_MONOTONIC — the source's last empty read and this read.
   */
  afterNs: number;
  /** See {@linkcode FileChange.afterNs}: when proctree read it. */
  beforeNs: number;
}

/** The bits of an event mask that are changes, in the order they happened when merged. */
const ACTIONS: readonly [number, FileAction][] = [
  [FAN_EVENT.CREATE, "create"],
  [FAN_EVENT.ATTRIB, "attrib"],
  [FAN_EVENT.CLOSE_WRITE, "write"],
  [FAN_EVENT.DELETE, "delete"],
];

/** Most directories remembered as outside every watched path. */
export const MAX_OUTSIDE = 65_536;

/**
 * What {@linkcode FileLookups.pathOf} says of a directory that exists but whose path is
 * longer than the kernel will spell (`ENAMETOOLONG`): not known to be outside the watched
 * paths, so a change in it is counted as unnamed, never dropped as outside.
 */
export const PATH_TOO_LONG = "<path too long>";

/** Lookups that need the kernel. */
export interface FileLookups {
  /**
   * The path of a directory handle (`open_by_handle_at`); null when gone or not permitted;
   * {@linkcode PATH_TOO_LONG} when it exists but its path cannot be spelled.
   */
  pathOf(h: FanHandle): string | null;
  /**
   * A directory appeared under a watched path (created or moved in) at `path`: walk the
   * directory `self` names — that one, by its handle, whatever is at `path` by now. With
   * `list`, every entry found below it is passed to it; returns false when the walk
   * stopped at its bound.
   */
  newDir(path: string, self: FanHandle, list?: (path: string, dir: boolean) => void): boolean;
}

/** Counters. */
export interface FileEventStats {
  /** Events read. */
  events: number;
  /** Changes reported. */
  changes: number;
  /** Changes whose directory could not be named (reported with the name alone: never). */
  unnamed: number;
  /**
   * Changes named through a lookup that a later rename showed were made outside the
   * watched paths (in a directory moved in since): not reported.
   */
  outsideThen: number;
  /** Directory lookups through the kernel. */
  lookups: number;
}

/** Directory handles → paths, and events → changes; see the module doc. */
export class FileEvents {
  #paths = new Map<string, string>();
  /** The other way round, for forgetting a deleted directory at once. */
  #keys = new Map<string, string>();
  #outside = new Set<string>();
  #roots: readonly string[];
  #k: FileLookups;
  #selfPid: number;
  /** Running totals. */
  readonly stats: FileEventStats = {
    events: 0,
    changes: 0,
    unnamed: 0,
    lookups: 0,
    outsideThen: 0,
  };
  /** Changes held behind one named through a lookup (see the module doc), in order. */
  #held: FileChange[] = [];
  /** Which of `#held` were named through a lookup. */
  #provisional = new Set<FileChange>();
  /**
   * Directories whose remembered path was taken when read (a lookup, or the walk of a new
   * directory), or derived from one, since the last settle: a change named through one is
   * held (see the module doc).
   */
  #lookedUp = new Set<string>();
  /** The event at hand named a path through {@linkcode FileEvents.#lookedUp}. */
  #fromLookup = false;
  /**
   * Directories known since the last settle only from a lookup, or from an event named
   * through one — never walked: a rename of one lists what is in it (it may have been
   * filled outside PATH, and a walk may have missed it, moving).
   */
  #unwalked = new Set<string>();
  /** When the events now handled happened, as the source bounds it (see `FileChange`). */
  seen: { afterNs: number; beforeNs: number } = { afterNs: 0, beforeNs: 0 };

  /** `roots`: the watched paths, absolute, without a trailing slash; `selfPid`: never reported. */
  constructor(roots: readonly string[], lookups: FileLookups, selfPid: number) {
    this.#roots = roots;
    this.#k = lookups;
    this.#selfPid = selfPid;
  }

  /** Whether `path` is a watched path or under one. */
  under(path: string): boolean {
    return this.#roots.some((r) => path === r || path.startsWith(r === "/" ? r : r + "/"));
  }

  /**
   * The source read the queue empty: every event made before any lookup so far is handled.
   * Hands the held changes on to `out`, each named through a lookup corrected by the
   * renames handled after it (undone newest first; one that leads outside the watched
   * paths was made outside: dropped). `sure` false (too much held, the queue never found
   * empty): those are counted as unnamed instead.
   */
  settle(out: FileChange[], sure = true): void {
    const held = this.#held;
    if (held.length === 0) return;
    this.#held = [];
    const later: FileChange[] = []; // directory renames after the change at hand
    const keep = new Array<boolean>(held.length).fill(false);
    for (let i = held.length - 1; i >= 0; i--) {
      const c = held[i];
      if (!this.#provisional.has(c)) keep[i] = true;
      else if (sure) keep[i] = this.#undo(c, later);
      else this.stats.unnamed++;
      if (c.action === "rename" && c.dir && c.to !== undefined) later.push(c);
    }
    for (let i = 0; i < held.length; i++) {
      if (keep[i]) out.push(held[i]);
      else this.stats.changes--;
    }
    this.#provisional.clear();
    this.#lookedUp.clear();
    this.#unwalked.clear();
  }

  /** Whether changes are held until the source reads its queue empty. */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  /**
   * Most changes held before they are settled as not sure: a full kernel queue (262 144
   * events) behind a moved-in tree's listing (at most 100 000 entries) fits; at ~200 bytes
   * a change, ~80 MB at worst.
   */
  static readonly MAX_HELD = 400_000;

  /**
   * Puts `c`'s paths back to where they were when it was made, undoing `later` (renames
   * handled after it, newest first) on the directory each names (its name came with the
   * event); false when it was made outside the watched paths. Rewritten either way: a
   * rename is itself undone on the changes before it with its paths as they were.
   */
  #undo(c: FileChange, later: readonly FileChange[]): boolean {
    // A found entry's name is the walk's too; a change's came with its event.
    const back = (p: string) => {
      const slash = c.action === "found" ? p.length : p.lastIndexOf("/");
      let dir = p.slice(0, slash);
      for (const r of later) {
        if (dir === r.to || dir.startsWith(r.to + "/")) dir = r.path + dir.slice(r.to!.length);
      }
      return dir + p.slice(slash);
    };
    c.path = back(c.path);
    if (c.to !== undefined) c.to = back(c.to);
    if (this.under(c.path) || (c.to !== undefined && this.under(c.to))) return true;
    this.stats.outsideThen++;
    return false;
  }

  /**
   * Remembers a directory's path (the walk at start, and new directories). `whenRead`: the
   * path is as the directory is now, not as of the event at hand (a walk's).
   */
  addDir(key: string, path: string, whenRead = false): void {
    const was = this.#paths.get(key);
    if (was !== undefined && this.#keys.get(was) === key) this.#keys.delete(was);
    this.#paths.set(key, path);
    this.#keys.set(path, key);
    this.#outside.delete(key);
    if (this.#fromLookup && !whenRead) this.#unwalked.add(key);
    else this.#unwalked.delete(key);
    if (whenRead || this.#fromLookup) this.#lookedUp.add(key);
  }

  /**
   * Forgets every directory: after the kernel dropped events (an overflow), a rename among
   * them would leave a remembered path wrong. Directories are walked again, or looked up.
   */
  forgetAll(): void {
    this.#paths.clear();
    this.#keys.clear();
    this.#outside.clear();
  }

  /**
   * The path remembered for a directory handle's key — undefined as well when it was taken
   * when read (see the module doc), so a walk takes it as it finds it.
   */
  pathOfKey(key: string): string | undefined {
    return this.#lookedUp.has(key) ? undefined : this.#paths.get(key);
  }

  /** How many directories are known. */
  get size(): number {
    return this.#paths.size;
  }

  /** Appends the changes `ev` describes under the watched paths to `out`. */
  handle(ev: FidEvent, out: FileChange[]): void {
    this.stats.events++;
    this.#fromLookup = false;
    const isDir = (ev.mask & FAN_EVENT.ONDIR) !== 0;
    const report = ev.pid !== this.#selfPid;
    if (ev.mask & FAN_EVENT.RENAME) {
      this.#rename(ev, isDir, report, out);
      return;
    }
    // A link count change of an unlinked file comes as an attribute change with no
    // directory: the delete itself is its own event.
    if (ev.dir === null && (ev.mask & ~FAN_EVENT.ONDIR) === FAN_EVENT.ATTRIB) return;
    const path = this.#path(ev.dir, ev.name);
    if (path === null) {
      if (ev.dir && this.#outside.has(ev.dir.key)) return;
      if (report) this.stats.unnamed++;
      return;
    }
    const inside = this.under(path);
    // The kernel merges a queued event with a later one of the same name, object and
    // process: a create and a delete in one event may be either order (`rm x; ln y x`), at
    // the place of the first — said, never guessed.
    const merged = (ev.mask & FAN_EVENT.CREATE) !== 0 && (ev.mask & FAN_EVENT.DELETE) !== 0;
    for (const [bit, action] of ACTIONS) {
      if (!(ev.mask & bit)) continue;
      if (isDir && action === "create") this.#created(ev.self, path);
      if (report && inside) {
        const c: FileChange = { action, path, dir: isDir, pid: ev.pid, ...this.seen };
        if (merged && (action === "create" || action === "delete")) c.merged = true;
        this.#push(out, c);
      }
      if (isDir && action === "delete") this.#forget(path);
    }
  }

  #rename(ev: FidEvent, isDir: boolean, report: boolean, out: FileChange[]): void {
    let from = this.#path(ev.dir, ev.name);
    let to = this.#path(ev.newDir, ev.newName);
    // Moved in or out: the side outside the watched paths is named too, looked up now.
    let namedAtRead: "path" | "to" | undefined;
    if (from === null && to !== null) {
      from = this.#outsidePath(ev.dir, ev.name);
      namedAtRead = "path";
    }
    if (to === null && from !== null) {
      to = this.#outsidePath(ev.newDir, ev.newName);
      namedAtRead = "to";
    }
    let movedIn = false;
    if (isDir && to !== null) {
      // Moved in from outside, or a directory never seen (a walk that met it mid-rename,
      // or stopped at its bound): what is below it was never walked.
      const unseen = ev.self !== null &&
        (!this.#paths.has(ev.self.key) || this.#unwalked.has(ev.self.key));
      if (from !== null) this.#moveDir(from, to);
      if (ev.self) this.addDir(ev.self.key, to);
      movedIn = ev.self !== null && this.under(to) &&
        (from === null || !this.under(from) || unseen);
      if (movedIn) this.#outside.clear();
    }
    const inside = (from !== null && this.under(from)) || (to !== null && this.under(to));
    let line: FileChange | null = null;
    if (report && inside) {
      if (from === null || to === null) this.stats.unnamed++;
      else {
        line = { action: "rename", path: from, to, dir: isDir, pid: ev.pid, ...this.seen };
        if (namedAtRead) line.namedAtRead = namedAtRead;
        this.#push(out, line);
      }
    }
    if (movedIn) this.#movedIn(to!, ev, line, out);
  }

  /**
   * A directory moved in at `to` (or renamed, never seen before): walked from the event's
   * handle, and with its rename line (`line`) printed, what the walk finds is listed after
   * it as `found` lines — without them a replay of the lines could not know what came in.
   * Found when the move is read: a change made in it between the move and then may also
   * come as its own line.
   */
  #movedIn(to: string, ev: FidEvent, line: FileChange | null, out: FileChange[]): void {
    if (line === null) {
      this.#k.newDir(to, ev.self!);
      return;
    }
    let found = 0;
    const whole = this.#k.newDir(to, ev.self!, (path, dir) => {
      found++;
      this.#fromLookup = true; // as the walk finds them, when it runs
      this.#push(out, { action: "found", path, dir, pid: ev.pid, ...this.seen });
    });
    line.found = found;
    if (!whole) line.foundCut = true;
  }

  #push(out: FileChange[], c: FileChange): void {
    this.stats.changes++;
    if (this.#fromLookup) this.#provisional.add(c);
    if (this.#fromLookup || this.#held.length > 0) this.#held.push(c);
    else out.push(c);
    if (this.#held.length > FileEvents.MAX_HELD) this.settle(out, false);
  }

  /**
   * A directory was created at `path`: remember the event's handle for it. Never a handle
   * looked up by path now: by now the name may be another directory, or a symlink. Without
   * one, the directory is looked up when a change names it.
   */
  #created(self: FanHandle | null, path: string): void {
    if (self === null) return;
    this.addDir(self.key, path);
    if (this.under(path)) this.#k.newDir(path, self);
  }

  /** The path of entry `name` in directory `dir`; `.` is the directory itself. */
  #path(dir: FanHandle | null, name: Uint8Array | null): string | null {
    if (!dir) return null;
    const base = this.#dirPath(dir);
    if (base === null) return null;
    if (name === null || (name.length === 1 && name[0] === 0x2e)) return base;
    return (base === "/" ? "" : base) + "/" + decodeBytes(name);
  }

  /** The path of an entry in a directory outside the watched paths (never cached). */
  #outsidePath(dir: FanHandle | null, name: Uint8Array | null): string | null {
    if (!dir || name === null) return null;
    this.stats.lookups++;
    const base = this.#k.pathOf(dir);
    if (base === null || base === PATH_TOO_LONG) return null;
    return (base === "/" ? "" : base) + "/" + decodeBytes(name);
  }

  #dirPath(h: FanHandle): string | null {
    const known = this.#paths.get(h.key);
    if (known !== undefined) {
      if (this.#lookedUp.has(h.key)) this.#fromLookup = true;
      return known;
    }
    if (this.#outside.has(h.key)) return null;
    this.stats.lookups++;
    const path = this.#k.pathOf(h);
    if (path === PATH_TOO_LONG) return null; // not known to be outside: counted as unnamed
    if (path !== null && this.under(path)) {
      this.addDir(h.key, path, true);
      this.#unwalked.add(h.key);
      this.#fromLookup = true;
      return path;
    }
    if (this.#outside.size >= MAX_OUTSIDE) this.#outside.clear();
    this.#outside.add(h.key);
    return null;
  }

  /** A directory moved: it and everything known below it get the new prefix. */
  #moveDir(from: string, to: string): void {
    const prefix = from + "/";
    for (const [key, p] of this.#paths) {
      if (p !== from && !p.startsWith(prefix)) continue;
      const moved = to + p.slice(from.length);
      this.#paths.set(key, moved);
      this.#keys.delete(p);
      this.#keys.set(moved, key);
      if (this.#fromLookup) this.#lookedUp.add(key); // a new path taken from a lookup
    }
  }

  /** A directory was deleted: forget it (it is empty, so nothing below it is known). */
  #forget(path: string): void {
    const key = this.#keys.get(path);
    if (key === undefined) return;
    this.#keys.delete(path);
    if (this.#paths.get(key) === path) this.#paths.delete(key);
  }
}
