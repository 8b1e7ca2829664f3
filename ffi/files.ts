/**
 * The file-change source (`--files PATH…`): a second fanotify group, in FID mode (file
 * handles, the directory and name of each entry), with a filesystem mark on each
 * filesystem under the watched paths. `lib/file_events.ts` turns its events into changes;
 * this file talks to the kernel: the group, the marks, the walk that seeds the directory
 * cache, and the two handle lookups (`name_to_handle_at`, `open_by_handle_at`).
 *
 * Needs `CAP_SYS_ADMIN` (filesystem marks) and Linux ≥ 5.17 (one event per rename). A
 * filesystem that refuses a filesystem mark gets an inode mark on every directory instead.
 *
 * @module
 */

import { AT_FDCWD, Errno, errno, errnoName, libc, LibcError, O, STATFS } from "./libc.ts";
import { MAX_READS_PER_DRAIN } from "./fanotify.ts";
import { cBytes, readFileText, readLink, realPath } from "./procfs.ts";
import type { BatchSink, Source } from "../lib/loop.ts";
import {
  decodeFidEvents,
  FAN_EVENT,
  FAN_INIT,
  FAN_MARK,
  type FanHandle,
  type FidEvent,
} from "../lib/fanotify_wire.ts";
import { type FileChange, FileEvents, PATH_TOO_LONG } from "../lib/file_events.ts";
import { parseMountinfo, PSEUDO_FS_TYPES } from "../lib/mountinfo.ts";
import { decodeBytes } from "../lib/text.ts";

/** `MAX_HANDLE_SZ`: the largest `f_handle` the kernel hands out. */
const MAX_HANDLE_BYTES = 128;
/** `struct dirent64`: `d_reclen`, `d_type`, `d_name`. */
const DIRENT = { reclen: 16, type: 18, name: 19 } as const;
const DT_DIR = 4;

/** The changes the group asks for. */
export const FILE_EVENTS_MASK: number = FAN_EVENT.CREATE | FAN_EVENT.DELETE | FAN_EVENT.RENAME |
  FAN_EVENT.CLOSE_WRITE | FAN_EVENT.ATTRIB | FAN_EVENT.ONDIR;

/** Why `--files` cannot start: the errno name and what it means. */
export class FilesUnavailable extends Error {
  /** The errno name. */
  readonly code: string;
  /** `code`: the errno name; `message`: a sentence for the user. */
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

const hex2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const hex = (b: Uint8Array) => {
  let s = "";
  for (const x of b) s += hex2[x];
  return s;
};

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
  #fsidByMount = new Map<number, string>();
  /** A descriptor on each marked filesystem, by fsid: where handles are opened. */
  #mountFds = new Map<string, number>();
  #devices = new Set<string>();
  /** Filesystems refused a filesystem mark: their directories are marked one by one. */
  #inodeMarked = new Set<string>();
  #onOverflow: () => void;

  private constructor(fd: number, roots: string[], onOverflow: () => void) {
    this.fd = fd;
    this.roots = roots;
    this.#onOverflow = onOverflow;
    this.events = new FileEvents(roots, {
      pathOf: (h) => this.#pathOf(h),
      keyOf: (p) => this.#keyOf(p),
      newDir: (p) => this.#walk(p),
    }, Deno.pid);
  }

  /**
   * Opens the group, marks the filesystems under `paths`, walks them. `onOverflow`: the
   * kernel dropped events. Throws {@linkcode FilesUnavailable}.
   */
  static open(paths: readonly string[], onOverflow: () => void): FileSource {
    const c = libc();
    const fd = c.fanotify_init(
      FAN_INIT.CLASS_NOTIF | FAN_INIT.CLOEXEC | FAN_INIT.NONBLOCK | FAN_INIT.UNLIMITED_QUEUE |
        FAN_INIT.REPORT_FID | FAN_INIT.REPORT_DIR_FID | FAN_INIT.REPORT_NAME |
        FAN_INIT.REPORT_TARGET_FID,
      O.RDONLY | O.CLOEXEC,
    );
    if (fd < 0) throw unavailable(errno());
    const cwd = Deno.cwd();
    const roots = [...new Set(paths.map((p) => absolutePath(p, cwd)))];
    const s = new FileSource(fd, roots.map((r) => realPath(r) ?? r), onOverflow);
    s.missing = s.roots.filter((r) => !s.#isDir(r));
    try {
      for (const r of s.roots) s.#markUnder(r);
      for (const r of s.roots) s.#walk(r);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /** Paths asked for that were not directories at start: watched for their creation. */
  missing: readonly string[] = [];

  /** Marks the filesystem of `root` (or of its nearest existing ancestor) and those below it. */
  #markUnder(root: string): void {
    let at = root;
    while (at !== "/" && !this.#isDir(at)) at = at.slice(0, at.lastIndexOf("/")) || "/";
    this.#markFs(at);
    for (const m of parseMountinfo(readFileText("/proc/self/mountinfo") ?? "")) {
      // Kernel interfaces (`/proc`, `/sys`, …) hold no files anyone changes: not marked, not walked.
      if (PSEUDO_FS_TYPES.has(m.fsType) || m.mountPoint === root) continue;
      if (this.events.under(m.mountPoint)) this.#markFs(m.mountPoint);
    }
  }

  #isDir(path: string): boolean {
    const fd = libc().open(cBytes(path), O.RDONLY | O.DIRECTORY | O.CLOEXEC);
    if (fd < 0) return false;
    libc().close(fd);
    return true;
  }

  #markFs(path: string): void {
    const c = libc();
    const key = this.#keyOf(path); // also records the filesystem's fsid
    const fsid = key?.slice(0, key.indexOf(":"));
    if (!fsid || this.#mountFds.has(fsid)) return;
    const mountFd = c.open(cBytes(path), O.RDONLY | O.DIRECTORY | O.CLOEXEC);
    if (mountFd < 0) throw new LibcError(`open(${path})`, errno());
    this.#mountFds.set(fsid, mountFd);
    const ok = c.fanotify_mark(
      this.fd,
      FAN_MARK.ADD | FAN_MARK.FILESYSTEM,
      BigInt(FILE_EVENTS_MASK),
      AT_FDCWD,
      cBytes(path),
    ) === 0;
    if (ok) {
      this.marks.filesystems++;
      return;
    }
    const e = errno();
    if (e === Errno.EPERM) throw unavailable(e);
    if (e === Errno.EINVAL) throw unavailable(e);
    this.#inodeMarked.add(fsid); // e.g. EXDEV, ENODEV: mark each directory as it is walked
  }

  /** Walks `root`'s directories: each one's handle is remembered (and marked, if needed). */
  #walk(root: string): void {
    const c = libc();
    const stack = [root];
    while (stack.length) {
      const dir = stack.pop()!;
      const key = this.#keyOf(dir);
      if (key === null) continue;
      const fsid = key.slice(0, key.indexOf(":"));
      if (!this.#mountFds.has(fsid)) continue; // a filesystem not marked (a kernel interface)
      this.events.addDir(key, dir);
      if (this.#inodeMarked.has(fsid)) this.#markDir(dir);
      const d = c.opendir(cBytes(dir));
      if (d === null) continue;
      try {
        for (let e = c.readdir(d); e !== null; e = c.readdir(d)) {
          const v = new Deno.UnsafePointerView(e);
          if (v.getUint8(DIRENT.type) !== DT_DIR) continue;
          // The name ends at its NUL, within the record (never read past it).
          const size = Math.min(v.getUint16(DIRENT.reclen), 256 + DIRENT.name) - DIRENT.name;
          const name = new Uint8Array(v.getArrayBuffer(size, DIRENT.name));
          const end = name.indexOf(0);
          const n = name.subarray(0, end < 0 ? name.length : end);
          if (
            (n.length === 1 && n[0] === 0x2e) || (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e)
          ) {
            continue;
          }
          stack.push((dir === "/" ? "" : dir) + "/" + decodeBytes(n));
        }
      } finally {
        c.closedir(d);
      }
    }
  }

  #markDir(dir: string): void {
    const ok = libc().fanotify_mark(
      this.fd,
      FAN_MARK.ADD | FAN_MARK.ONLYDIR,
      BigInt(FILE_EVENTS_MASK | FAN_EVENT.EVENT_ON_CHILD),
      AT_FDCWD,
      cBytes(dir),
    ) === 0;
    if (ok) this.marks.directories++;
  }

  /** The handle key of `path` (fsid, type, handle), as events carry it; null when gone. */
  #keyOf(path: string): string | null {
    const c = libc();
    this.#handleView.setUint32(0, MAX_HANDLE_BYTES, true);
    const r = c.name_to_handle_at(
      AT_FDCWD,
      cBytes(path),
      this.#handle,
      new Uint8Array(this.#mountId.buffer),
      0,
    );
    if (r !== 0) return null;
    const fsid = this.#fsid(this.#mountId[0], path);
    if (fsid === null) return null;
    const n = this.#handleView.getUint32(0, true);
    return `${fsid}:${hex(this.#handle.subarray(4, 8 + n))}`;
  }

  #fsid(mountId: number, path: string): string | null {
    const known = this.#fsidByMount.get(mountId);
    if (known !== undefined) return known;
    const st = new Uint8Array(STATFS.size);
    if (libc().statfs(cBytes(path), st) !== 0) return null;
    const fsid = hex(st.subarray(STATFS.fsid, STATFS.fsid + 8));
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

  /** Reads every queued event into changes (up to a bound); returns how many changes. */
  drain(_sink: BatchSink, _max: number): number {
    const c = libc();
    const before = this.#changes.length;
    for (let reads = 0; reads < MAX_READS_PER_DRAIN; reads++) {
      const n = Number(c.read(this.fd, this.#buf, BigInt(this.#buf.length)));
      if (n < 0) {
        const e = errno();
        if (e === Errno.EAGAIN || e === Errno.EINTR) break;
        throw new LibcError("read(fanotify files)", e);
      }
      if (n === 0) break;
      this.#decoded.length = 0;
      decodeFidEvents(this.#view, n, this.#decoded);
      for (const ev of this.#decoded) {
        if (ev.mask & FAN_EVENT.Q_OVERFLOW) this.#onOverflow();
        else this.events.handle(ev, this.#changes);
      }
    }
    return this.#changes.length - before;
  }

  /** Changes whose directory could not be named so far. */
  unnamed(): number {
    return this.events.stats.unnamed;
  }

  /** The changes drained since the last call. */
  take(): FileChange[] {
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
