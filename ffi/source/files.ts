/**
 * The file-change source (`--files PATH…`): a second fanotify group, in FID mode (file
 * handles, the directory and name of each entry), with a filesystem mark on each
 * filesystem under the watched paths. `lib/source/files/events.ts` turns its events into changes;
 * this file talks to the kernel: the group, the marks, the walk that seeds the directory
 * cache, and the two handle lookups (`name_to_handle_at`, `open_by_handle_at`).
 *
 * Needs `CAP_SYS_ADMIN` (filesystem marks) and Linux ≥ 5.17 (one event per rename). A
 * filesystem that refuses a filesystem mark gets an inode mark on every directory instead.
 *
 * @module
 */

import { SourceUnavailable } from "../../lib/pipeline/unavailable.ts";
import { Clock, clockNs, Errno, errno, errnoName, libc, LibcError, O, STATFS } from "../libc.ts";
import { MAX_READS_PER_DRAIN, OWN_MOUNTINFO } from "./exec_names.ts";
import { cBytes, readFileText, readLink, realPath, writeKernelFile } from "../procfs.ts";
import type { BatchSink, Source } from "../../lib/pipeline/loop.ts";
import {
  decodeFidEvents,
  FAN_EVENT,
  FAN_INIT,
  FAN_MARK,
  type FanHandle,
  type FidEvent,
  handleKey,
  hexOf,
} from "../../lib/source/fanotify_wire.ts";
import { type FileChange, FileEvents, PATH_TOO_LONG } from "../../lib/source/files/events.ts";
import { parseMountinfo, PSEUDO_FS_TYPES } from "../../lib/source/mountinfo.ts";
import { decodeBytes } from "../../lib/text.ts";

/** `MAX_HANDLE_SZ`: the largest `f_handle` the kernel hands out. */
const MAX_HANDLE_BYTES = 128;
/** `struct dirent64`: `d_reclen`, `d_type`, `d_name`. */
const DIRENT = { reclen: 16, type: 18, name: 19 } as const;
/** `d_type`: a directory, or a filesystem that does not say (then the open tells). */
const DT = { UNKNOWN: 0, DIR: 4 } as const;
/** `AT_EMPTY_PATH`: the descriptor itself. */
const AT_EMPTY_PATH = 0x1000;
const EMPTY_NAME = new Uint8Array(1);

/**
 * Most directories one new directory's walk remembers: a tree moved in whole can be big,
 * and the walk runs between drains. Past it the walk stops (counted); a change in a
 * directory not walked is still named, by a lookup of its handle when it comes.
 */
export const MAX_WALK_DIRS = 20_000;

/**
 * Most entries a directory moved in lists as `found` lines (its rename line says
 * `found_cut` past it): a bound on the lines one rename can print.
 */
export const MAX_LISTED = 100_000;

/** The changes the group asks for. */
export const FILE_EVENTS_MASK: number = FAN_EVENT.CREATE | FAN_EVENT.DELETE | FAN_EVENT.RENAME |
  FAN_EVENT.CLOSE_WRITE | FAN_EVENT.ATTRIB | FAN_EVENT.ONDIR;

/** Why `--files` cannot start: the errno name and what it means. */
export class FilesUnavailable extends SourceUnavailable {
  /** `code`: the errno name; `message`: a sentence for the user. */
  constructor(code: string, message: string) {
    super("--files", code, message);
  }
}

/** An absolute, normalised path (`.` and `..` resolved lexically, no trailing slash). */
export function absolutePath(path: string, cwd: string): string {
  const parts: string[] = [];
  for (const p of (path.startsWith("/") ? path : `${cwd}/${path}`).split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return "/" + parts.join("/");
}

/** The fanotify FID group and its marks, as a source of the read loop; see the module doc. */
export class FileSource implements Source {
  readonly name = "files";
  readonly fd: number;
  readonly pending = false;
  /** Handles → paths, events → changes. */
  readonly events: FileEvents;
  /** The watched paths, absolute. */
  readonly roots: readonly string[];
  /** Filesystems marked whole, and directories marked one by one. */
  readonly marks = { filesystems: 0, directories: 0 };
  #changes: FileChange[] = [];
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #decoded: FidEvent[] = [];
  #handle = new Uint8Array(8 + MAX_HANDLE_BYTES);
  #handleView = new DataView(this.#handle.buffer);
  #mountId = new Int32Array(1);
  #fsidByMount = new Map<number, Uint8Array>();
  #statfs = new Uint8Array(STATFS.size);
  /** A descriptor on each marked filesystem, by fsid: where handles are opened. */
  #mountFds = new Map<string, number>();
  #devices = new Set<string>();
  #inodeMarksOnly = false;
  /** Filesystems refused a filesystem mark: their directories are marked one by one. */
  #inodeMarked = new Set<string>();
  #onOverflow: () => void;
  /** When a read last began that found the queue empty (at first: before the marks). */
  #emptyNs = clockNs(Clock.MONOTONIC);

  private constructor(fd: number, roots: string[], onOverflow: () => void) {
    this.fd = fd;
    this.roots = roots;
    this.#onOverflow = onOverflow;
    this.events = new FileEvents(roots, {
      pathOf: (h) => this.#pathOf(h),
      newDir: (p, self, list) => this.#walkNew(p, self, list),
    }, Deno.pid);
  }

  /**
   * Opens the group, marks the filesystems under `paths`, walks them. `onOverflow`: the
   * kernel dropped events. `inodeMarks`: mark each directory instead of the filesystem, as
   * where a filesystem mark is refused (for measuring the two; see BENCHMARKS.md). Throws
   * {@linkcode FilesUnavailable}.
   */
  static open(
    paths: readonly string[],
    onOverflow: () => void,
    inodeMarks = false,
  ): FileSource {
    const c = libc();
    // A bounded queue: a filesystem mark queues every change on the filesystem, inside PATH
    // or not, and unbounded a stalled proctree let a flood take kernel memory without
    // limit. Past the bound: overflow, said as a `lost` line.
    const { fd, queueEvents } = initWithQueue(FILES_QUEUE_EVENTS, () =>
      c.fanotify_init(
        FAN_INIT.CLASS_NOTIF | FAN_INIT.CLOEXEC | FAN_INIT.NONBLOCK | FAN_INIT.REPORT_FID |
          FAN_INIT.REPORT_DIR_FID | FAN_INIT.REPORT_NAME | FAN_INIT.REPORT_TARGET_FID,
        O.RDONLY | O.CLOEXEC,
      ));
    if (fd < 0) throw unavailable(errno());
    const cwd = Deno.cwd();
    const roots = [...new Set(paths.map((p) => absolutePath(p, cwd)))];
    const s = new FileSource(fd, roots.map((r) => realPath(r) ?? r), onOverflow);
    s.#inodeMarksOnly = inodeMarks;
    s.queueEvents = queueEvents;
    s.missing = s.roots.filter((r) => !s.#isDir(r));
    try {
      for (const r of s.roots) {
        let at = r; // the nearest existing ancestor of a PATH not there yet
        while (at !== "/" && !s.#isDir(at)) at = at.slice(0, at.lastIndexOf("/")) || "/";
        const why = s.#markFs(at, true);
        if (why) throw new FilesUnavailable("EOPNOTSUPP", `${at} cannot be watched: ${why}`);
        s.#walkPath(r);
      }
      s.#markMounts(true);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /** How many events the kernel queues for proctree before it overflows. */
  queueEvents = 0;

  /** Paths asked for that were not directories at start: watched for their creation. */
  missing: readonly string[] = [];

  /** Mounts under PATH that cannot be watched: where, the filesystem, and why. */
  readonly unwatched: string[] = [];
  /** Mounts under PATH handled, by mount id. */
  #mountsSeen = new Set<number>();
  /** Where the mounts under PATH are (walked again after an overflow). */
  #mountsWalked = new Set<string>();

  /**
   * Marks and walks each mount under PATH not handled yet: a filesystem mounted below PATH
   * is its own (a walk never crosses into it). At start (`start`) a mount on a PATH itself
   * was walked with it. A mount that cannot be watched is said (`unwatched`, and `onNote`).
   */
  #markMounts(start: boolean): void {
    for (const m of parseMountinfo(readFileText(OWN_MOUNTINFO) ?? "")) {
      // Kernel interfaces (`/proc`, `/sys`, …) hold no files anyone changes: not marked, not walked.
      if (PSEUDO_FS_TYPES.has(m.fsType) || this.#mountsSeen.has(m.mountId)) continue;
      if (!this.events.under(m.mountPoint)) continue;
      this.#mountsSeen.add(m.mountId);
      const why = this.#markFs(m.mountPoint, false);
      if (why) {
        const said = `${m.mountPoint} (${m.fsType}: ${why})`;
        this.unwatched.push(said);
        if (!start) this.onNote?.(`--files: not watched: ${said}`);
      } else {
        this.#mountsWalked.add(m.mountPoint);
        if (!start || !this.roots.includes(m.mountPoint)) this.#walkPath(m.mountPoint);
      }
    }
  }

  /** Mounts appeared or went: those new under PATH are marked and walked. */
  markMounts(): void {
    this.#markMounts(false);
  }

  /** Told of a mount under PATH that appeared and cannot be watched. */
  onNote?: (message: string) => void;

  #isDir(path: string): boolean {
    const fd = libc().open(cBytes(path), O.RDONLY | O.DIRECTORY | O.CLOEXEC);
    if (fd < 0) return false;
    libc().close(fd);
    return true;
  }

  /**
   * Marks the filesystem at `path` (a filesystem mark; where refused, an inode mark on each
   * directory as it is walked); returns why it cannot be watched, or null. `strict`: a
   * refusal that means `--files` cannot work at all (`EPERM`, `EINVAL`) throws.
   */
  #markFs(path: string, strict: boolean): string | null {
    const c = libc();
    const key = this.#keyOf(path);
    if (key === null) return `no file handles (name_to_handle_at: ${errnoName(this.#keyErrno)})`;
    const fsid = key.slice(0, key.indexOf(":"));
    if (this.#mountFds.has(fsid)) return null; // marked already (another mount of it)
    const mountFd = c.open(cBytes(path), O.RDONLY | O.DIRECTORY | O.CLOEXEC);
    if (mountFd < 0) return `open: ${errnoName(errno())}`;
    const ok = !this.#inodeMarksOnly && c.fanotify_mark(
          this.fd,
          FAN_MARK.ADD | FAN_MARK.FILESYSTEM,
          BigInt(FILE_EVENTS_MASK),
          mountFd,
          null,
        ) === 0;
    const e = errno();
    if (ok) this.marks.filesystems++;
    else if (strict && !this.#inodeMarksOnly && (e === Errno.EPERM || e === Errno.EINVAL)) {
      c.close(mountFd);
      throw unavailable(e);
    } else if (this.#markDir(mountFd)) {
      this.#inodeMarked.add(fsid); // e.g. EXDEV: each directory is marked as it is walked
    } else {
      c.close(mountFd);
      return `fanotify_mark: ${errnoName(e)}`;
    }
    this.#mountFds.set(fsid, mountFd);
    return null;
  }

  /** Walks the directory at `path` at start (by its path: the user named it). */
  #walkPath(path: string): void {
    const fd = libc().open(cBytes(path), O.RDONLY | O.DIRECTORY | O.CLOEXEC);
    if (fd < 0) return; // not there (yet): watched for its creation
    const dir = this.#handleAt(fd, EMPTY_NAME, AT_EMPTY_PATH);
    libc().close(fd);
    if (dir) this.#walk(dir, path, Infinity, false);
  }

  /** A directory created or moved in: walked from the event's handle, the one it names. */
  #walkNew(path: string, self: FanHandle, list?: (path: string, dir: boolean) => void): boolean {
    const fsid = self.key.slice(0, self.key.indexOf(":"));
    return this.#walk({ key: self.key, bytes: self.bytes, fsid }, path, MAX_WALK_DIRS, true, list);
  }

  /**
   * Remembers the directories below `top` (at `path`), each opened by its handle and each
   * child named by its handle, relative to its parent's descriptor: never by a path, so a
   * name swapped for a symlink or another directory meanwhile leads nowhere. Does not cross
   * into another mount, nor into a directory already known at another path (its own
   * events keep that one current); stops after `maxDirs` (counted; then returns false).
   * `whenRead`: a new directory's walk, while events made before it may still be queued —
   * the paths below `top` are as they are now (see `FileEvents.settle`).
   * With `list`, every entry below `top` is passed to it (a directory once it is opened),
   * at most {@linkcode MAX_WALK_DIRS} directories and {@linkcode MAX_LISTED} entries.
   */
  #walk(
    top: WalkDir,
    path: string,
    maxDirs: number,
    whenRead: boolean,
    list?: (path: string, dir: boolean) => void,
  ): boolean {
    const c = libc();
    const mountFd = this.#mountFds.get(top.fsid);
    if (mountFd === undefined) return true; // a filesystem not marked (a kernel interface)
    // Each with whether readdir left its type unknown (then it may be a file after all).
    const stack: [WalkDir, string, boolean][] = [[top, path, false]];
    let walked = 0;
    let listed = 0;
    const put = (p: string, dir: boolean) => {
      if (list && listed++ < MAX_LISTED) list(p, dir);
    };
    while (stack.length) {
      const [dir, dirPath, unknownType] = stack.pop()!;
      const known = this.events.pathOfKey(dir.key);
      if (known !== undefined && known !== dirPath) continue;
      if (walked++ === maxDirs) {
        this.walksCut++;
        return false;
      }
      const fd = c.open_by_handle_at(mountFd, dir.bytes, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
      if (fd < 0) { // gone since, or not a directory
        if (unknownType && errno() === Errno.ENOTDIR) put(dirPath, false);
        continue;
      }
      this.events.addDir(dir.key, dirPath, whenRead && dir !== top);
      if (dir !== top) put(dirPath, true);
      const self = this.#handleAt(fd, EMPTY_NAME, AT_EMPTY_PATH);
      if (this.#inodeMarked.has(dir.fsid)) this.#markDir(fd);
      const d = self && c.fdopendir(fd);
      if (!d) {
        c.close(fd);
        continue;
      }
      try {
        for (const [name, type] of entries(d, list !== undefined)) {
          const entry = (dirPath === "/" ? "" : dirPath) + "/" + decodeBytes(name.subarray(0, -1));
          if (type !== DT.DIR && type !== DT.UNKNOWN) {
            put(entry, false);
            continue;
          }
          const child = this.#handleAt(fd, name, 0);
          // Gone, or on another mount (whose root is walked on its own).
          if (child === null || child.mountId !== self!.mountId) {
            if (child !== null) put(entry, true);
            continue;
          }
          stack.push([child, entry, type === DT.UNKNOWN]);
        }
      } finally {
        c.closedir(d); // closes fd
      }
    }
    return listed <= MAX_LISTED;
  }

  /** Directories whose walk stopped at {@linkcode MAX_WALK_DIRS}. */
  walksCut = 0;

  #markDir(fd: number): boolean {
    const ok = libc().fanotify_mark(
      this.fd,
      FAN_MARK.ADD | FAN_MARK.ONLYDIR,
      BigInt(FILE_EVENTS_MASK | FAN_EVENT.EVENT_ON_CHILD),
      fd,
      null,
    ) === 0;
    if (ok) this.marks.directories++;
    return ok;
  }

  /**
   * The handle of `name` (NUL-terminated) in directory `dirfd`, not following a symlink
   * (with `AT_EMPTY_PATH` and an empty name: `dirfd` itself); null when gone.
   */
  #handleAt(dirfd: number, name: Uint8Array, flags: number): WalkDir & { mountId: number } | null {
    this.#handleView.setUint32(0, MAX_HANDLE_BYTES, true);
    const r = libc().name_to_handle_at(
      dirfd,
      name,
      this.#handle,
      new Uint8Array(this.#mountId.buffer),
      flags,
    );
    if (r !== 0) return null;
    const mountId = this.#mountId[0];
    const fsid = this.#fsid(mountId, () => libc().fstatfs(dirfd, this.#statfs));
    if (fsid === null) return null;
    const bytes = this.#handle.slice(0, 8 + this.#handleView.getUint32(0, true));
    return { key: handleKey(fsid, bytes), bytes, fsid: hexOf(fsid), mountId };
  }

  /**
   * The handle key of `path` (fsid, type, handle), as events carry it; null when gone or
   * when its filesystem gives no handles (the errno in `#keyErrno`).
   */
  #keyOf(path: string): string | null {
    const fd = libc().open(cBytes(path), O.PATH | O.CLOEXEC);
    if (fd < 0) {
      this.#keyErrno = errno();
      return null;
    }
    const key = this.#handleAt(fd, EMPTY_NAME, AT_EMPTY_PATH)?.key ?? null;
    if (key === null) this.#keyErrno = errno();
    libc().close(fd);
    return key;
  }

  #keyErrno = 0;

  /** The fsid of a mount (by its id: asked once), from `statfs` into `#statfs`. */
  #fsid(mountId: number, statfs: () => number): Uint8Array | null {
    const known = this.#fsidByMount.get(mountId);
    if (known !== undefined) return known;
    if (statfs() !== 0) return null;
    const fsid = this.#statfs.slice(STATFS.fsid, STATFS.fsid + 8);
    this.#fsidByMount.set(mountId, fsid);
    return fsid;
  }

  /** The path of a directory handle (needs `CAP_DAC_READ_SEARCH`); null when gone. */
  #pathOf(h: FanHandle): string | null {
    const mountFd = this.#mountFds.get(h.key.slice(0, h.key.indexOf(":")));
    if (mountFd === undefined) return null;
    const c = libc();
    const fd = c.open_by_handle_at(mountFd, h.bytes, O.PATH | O.CLOEXEC);
    if (fd < 0) return null;
    try {
      const p = readLink(`/proc/self/fd/${fd}`);
      if (p === null) return errno() === Errno.ENAMETOOLONG ? PATH_TOO_LONG : null;
      return p.endsWith(" (deleted)") ? null : p;
    } finally {
      c.close(fd);
    }
  }

  /**
   * Reads every queued event into changes (up to a bound); returns how many changes. Each
   * change is dated between the last read that found the queue empty (every event read
   * later happened after it began) and the read that returned it.
   */
  drain(_sink: BatchSink, _max: number): number {
    return this.#read();
  }

  #read(): number {
    const c = libc();
    const before = this.#changes.length;
    let emptied = false;
    for (let reads = 0; reads < MAX_READS_PER_DRAIN; reads++) {
      const startNs = clockNs(Clock.MONOTONIC);
      const n = Number(c.read(this.fd, this.#buf, BigInt(this.#buf.length)));
      if (n < 0) {
        const e = errno();
        if (e === Errno.EAGAIN) {
          this.#emptyNs = startNs;
          emptied = true;
        }
        if (e === Errno.EAGAIN || e === Errno.EINTR) break;
        throw new LibcError("read(fanotify files)", e);
      }
      if (n === 0) break;
      this.events.seen = { afterNs: this.#emptyNs, beforeNs: clockNs(Clock.MONOTONIC) };
      this.#decoded.length = 0;
      decodeFidEvents(this.#view, n, this.#decoded);
      for (const ev of this.#decoded) {
        if (ev.mask & FAN_EVENT.Q_OVERFLOW) this.#overflowed();
        else this.events.handle(ev, this.#changes);
      }
    }
    // Read empty: every event made before the lookups so far is handled.
    if (emptied) this.events.settle(this.#changes);
    return this.#changes.length - before;
  }

  /**
   * The queue overflowed: changes were dropped, a directory's rename among them perhaps, so
   * no remembered path is trusted; PATH is walked again as it is now.
   */
  #overflowed(): void {
    this.#onOverflow();
    this.events.settle(this.#changes, false); // the renames that would correct them may be lost
    this.events.forgetAll();
    for (const r of this.roots) this.#walkPath(r);
    for (const at of this.#mountsWalked) this.#walkPath(at);
  }

  /** Whether changes wait for the queue to be read empty (see `FileEvents.settle`). */
  holding(): boolean {
    return this.events.holding;
  }

  /** Changes whose directory could not be named so far. */
  unnamed(): number {
    return this.events.stats.unnamed;
  }

  /**
   * The changes drained since the last call (asked after every batch: no array when none).
   * Changes held for a lookup are settled first, by reading the queue until it is empty.
   */
  take(): readonly FileChange[] {
    if (this.events.holding) this.#read();
    if (this.#changes.length === 0) return NO_CHANGES;
    const out = this.#changes;
    this.#changes = [];
    return out;
  }

  /** Closes the group and the filesystem descriptors. */
  close(): void {
    const c = libc();
    c.close(this.fd);
    for (const fd of this.#mountFds.values()) c.close(fd);
    this.#mountFds.clear();
  }
}

function unavailable(e: number): FilesUnavailable {
  const name = errnoName(e);
  if (e === Errno.EPERM) {
    return new FilesUnavailable(name, "needs CAP_SYS_ADMIN (EPERM)");
  }
  if (e === Errno.EINVAL) {
    return new FilesUnavailable(
      name,
      "this kernel's fanotify refuses file handles, names and rename events " +
        "(fanotify_init: EINVAL; Linux ≥ 5.17 has them)",
    );
  }
  return new FilesUnavailable(name, `fanotify is not available (${name})`);
}

/**
 * The bound of the file-change queue, in events: bursts of a busy build or a big copy fit
 * (the kernel's default, 16 384, overflowed on 20 000 files made at once while a new tree
 * was walked); at about 210 bytes an event, at most ~55 MB of kernel memory while proctree
 * cannot read.
 */
export const FILES_QUEUE_EVENTS = 262_144;

/** The sysctl a new fanotify group takes its queue bound from. */
const MAX_QUEUED_EVENTS = "/proc/sys/fs/fanotify/max_queued_events";

/**
 * Calls `init` (a `fanotify_init`) with the queue bound at least `events`: the kernel gives
 * a new group the sysctl's value, and offers no other bound but none at all. The host's
 * value is put back at once; where it cannot be changed (a container), the group gets it.
 */
function initWithQueue(events: number, init: () => number): { fd: number; queueEvents: number } {
  const was = Number(readFileText(MAX_QUEUED_EVENTS)?.trim());
  if (!Number.isInteger(was) || was <= 0) return { fd: init(), queueEvents: 0 };
  if (was >= events || writeKernelFile(MAX_QUEUED_EVENTS, `${events}\n`) !== 0) {
    return { fd: init(), queueEvents: was };
  }
  try {
    return { fd: init(), queueEvents: events };
  } finally {
    writeKernelFile(MAX_QUEUED_EVENTS, `${was}\n`);
  }
}

const NO_CHANGES: readonly FileChange[] = [];

/** A directory met in a walk: its handle's key and bytes, and its filesystem's fsid (hex). */
interface WalkDir {
  key: string;
  bytes: Uint8Array;
  fsid: string;
}

/**
 * The names (NUL-terminated) and `d_type`s of the entries of the open directory `d`,
 * without `.` and `..`; with `all` false, only those that are or may be directories.
 */
function* entries(d: Deno.PointerObject, all: boolean): Generator<[Uint8Array, number]> {
  const c = libc();
  for (let e = c.readdir(d); e !== null; e = c.readdir(d)) {
    const v = new Deno.UnsafePointerView(e);
    const type = v.getUint8(DIRENT.type);
    if (!all && type !== DT.DIR && type !== DT.UNKNOWN) continue;
    // The name ends at its NUL, within the record (never read past it).
    const size = Math.min(v.getUint16(DIRENT.reclen), 256 + DIRENT.name) - DIRENT.name;
    const raw = new Uint8Array(v.getArrayBuffer(size, DIRENT.name));
    const end = raw.indexOf(0);
    const n = raw.subarray(0, end < 0 ? raw.length : end);
    if ((n.length === 1 && n[0] === 0x2e) || (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e)) {
      continue;
    }
    const name = new Uint8Array(n.length + 1);
    name.set(n);
    yield [name, type];
  }
}
