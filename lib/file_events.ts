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
 * @module
 */

import { FAN_EVENT, type FanHandle, type FidEvent } from "./fanotify_wire.ts";
import { decodeBytes } from "./text.ts";

/** What happened to a file or directory. */
export type FileAction = "create" | "write" | "delete" | "rename" | "attrib";

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
   * directory `self` names — that one, by its handle, whatever is at `path` by now.
   */
  newDir(path: string, self: FanHandle): void;
}

/** Counters. */
export interface FileEventStats {
  /** Events read. */
  events: number;
  /** Changes reported. */
  changes: number;
  /** Changes whose directory could not be named (reported with the name alone: never). */
  unnamed: number;
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
  readonly stats: FileEventStats = { events: 0, changes: 0, unnamed: 0, lookups: 0 };
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

  /** Remembers a directory's path (the walk at start, and new directories). */
  addDir(key: string, path: string): void {
    this.#paths.set(key, path);
    this.#keys.set(path, key);
    this.#outside.delete(key);
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

  /** The path remembered for a directory handle's key. */
  pathOfKey(key: string): string | undefined {
    return this.#paths.get(key);
  }

  /** How many directories are known. */
  get size(): number {
    return this.#paths.size;
  }

  /** Appends the changes `ev` describes under the watched paths to `out`. */
  handle(ev: FidEvent, out: FileChange[]): void {
    this.stats.events++;
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
    if (from === null && to !== null) from = this.#outsidePath(ev.dir, ev.name);
    if (to === null && from !== null) to = this.#outsidePath(ev.newDir, ev.newName);
    if (isDir && to !== null) {
      if (from !== null) this.#moveDir(from, to);
      if (ev.self) this.addDir(ev.self.key, to);
      // Moved in from outside: what is below it was never walked.
      if ((from === null || !this.under(from)) && this.under(to)) {
        this.#outside.clear();
        if (ev.self) this.#k.newDir(to, ev.self);
      }
    }
    const inside = (from !== null && this.under(from)) || (to !== null && this.under(to));
    if (!report || !inside) return;
    if (from === null || to === null) {
      this.stats.unnamed++;
      return;
    }
    this.#push(out, { action: "rename", path: from, to, dir: isDir, pid: ev.pid, ...this.seen });
  }

  #push(out: FileChange[], c: FileChange): void {
    this.stats.changes++;
    out.push(c);
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
    if (known !== undefined) return known;
    if (this.#outside.has(h.key)) return null;
    this.stats.lookups++;
    const path = this.#k.pathOf(h);
    if (path === PATH_TOO_LONG) return null; // not known to be outside: counted as unnamed
    if (path !== null && this.under(path)) {
      this.addDir(h.key, path);
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
