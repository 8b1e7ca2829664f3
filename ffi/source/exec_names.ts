/**
 * The exec-name source: a fanotify group that reports every file `execve` opens
 * (`FAN_OPEN_EXEC`), on every mounted filesystem, with the pid of the process doing the exec
 * and a descriptor to the file. The kernel queues these whatever the reader's timing, so a
 * process that lived a microsecond is still named. `lib/source/exec_names/names.ts` pairs them with the
 * connector's exec events; this file only talks to the kernel.
 *
 * - One group, notification class, non-blocking, close-on-exec; files are handed over
 *   read-only, non-blocking, without touching their access time. Needs `CAP_SYS_ADMIN`.
 * - The kernel's bounded queue (`fs.fanotify.max_queued_events`, 16 384 by default), not an
 *   unlimited one: each queued open holds its file open in the kernel, and a stopped
 *   proctree let a 500 000-exec storm queue 130 MB of them. Past the bound the kernel drops
 *   opens and queues an overflow event (a `lost` line; exec facts from BPF still name
 *   those execs by the file's identity).
 * - With the BPF exec facts, the opens of an exec they name exactly (a program run as
 *   given, its path walked inside `execve` and checked: {@linkcode FanotifySource.namedElsewhere})
 *   are closed unread; fanotify still names scripts and what the walk could not.
 * - A filesystem mark (`FAN_MARK_FILESYSTEM`) per mounted filesystem, a mount mark where a
 *   filesystem mark is refused (a btrfs subvolume); kernel interfaces (`proc`, `sysfs`, …)
 *   are skipped. Mounts that appear later are marked when `/proc/self/mountinfo` says so
 *   (`POLLPRI`): the second source here, {@linkcode MountWatch}.
 *
 * @module
 */

import { SourceUnavailable } from "../../lib/pipeline/unavailable.ts";
import { AT_FDCWD, Errno, errno, errnoName, libc, LibcError, O, POLL, POLLFD } from "../libc.ts";
import { cPath, fileId, listDir, readFileText, readLink, realPath, sameFile } from "../procfs.ts";
import type { BatchSink, Source } from "../../lib/pipeline/loop.ts";
import {
  decodeFanEvents,
  FAN_EVENT,
  FAN_INIT,
  FAN_MARK,
  FAN_NOFD,
  type FanEvent,
} from "../../lib/source/fanotify_wire.ts";
import { parseMountinfo, PSEUDO_FS_TYPES } from "../../lib/source/mountinfo.ts";
import { HEADER_BYTES, parseExecHeader } from "../../lib/source/exec_names/header.ts";
import { ExecNames, NOT_HERE } from "../../lib/source/exec_names/names.ts";

/** proctree's own mount table. */
export const OWN_MOUNTINFO = "/proc/self/mountinfo";

/**
 * The mount tables to mark: proctree's own, and the host's (init's), reached through
 * `/proc/1/root` when proctree runs in a mount namespace of its own (a systemd unit with
 * `PrivateTmp`, a container): the host's `/dev/shm` or a tmpfs mounted later are then
 * still marked.
 */
export const MOUNT_TABLES = [
  { mountinfo: OWN_MOUNTINFO, root: "" },
  { mountinfo: "/proc/1/mountinfo", root: "/proc/1/root" },
] as const;

/** The tables that apply here: init's only when its mount namespace is not ours. */
export function mountTables(): { mountinfo: string; root: string }[] {
  const own = readLink("/proc/self/ns/mnt");
  const init = readLink("/proc/1/ns/mnt");
  return MOUNT_TABLES.filter((t) => t.root === "" || (init !== null && init !== own));
}

/**
 * Most 64 KiB reads of the fanotify queue per drain (about 175 000 opens): past it the
 * loop turns once (output, timers) and reads on; execs whose opens were not read yet are
 * then named from `/proc` only.
 */
export const MAX_READS_PER_DRAIN = 64;

/** Room left by a read that emptied the queue: far more than one event (24 bytes here). */
const SHORT_READ_MARGIN_BYTES = 4096;

/** Least time between two checks of a mount table for changes, in ms. */
export const MOUNT_CHECK_MS = 5;

/** Why the source could not start: the errno name, and what it means for the user. */
export class FanotifyUnavailable extends SourceUnavailable {
  /** `code`: the errno name of the failed call (`EPERM` without CAP_SYS_ADMIN). */
  constructor(code: string) {
    super(
      "--exec-names fanotify",
      code,
      code === "EPERM"
        ? "fanotify needs CAP_SYS_ADMIN (EPERM)"
        : `fanotify is not available (${code})`,
    );
  }
}

/** Counters of the marks placed. */
export interface MarkStats {
  /** Filesystems marked whole. */
  filesystems: number;
  /** Mounts marked one by one (a filesystem mark was refused). */
  mounts: number;
  /** Mounts that could not be marked at all: execs from them are named from /proc only. */
  failed: number;
}

const latin1Bytes = (s: string): Uint8Array => {
  const b = new Uint8Array(s.length + 1);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
};

/** Whether binfmt_misc handlers are registered (then a file of no known kind may still run). */
function binfmtMiscHandlers(): boolean {
  return listDir("/proc/sys/fs/binfmt_misc").some((n) => n !== "register" && n !== "status");
}

/** The fanotify group, as a source of the read loop; see the module doc. */
export class FanotifySource implements Source {
  readonly name = "fanotify";
  readonly fd: number;
  /**
   * Not a reason to wake: an open matters only with its exec event, which wakes the loop
   * anyway (and any other event, or the idle tick, empties the queue). Waking for opens
   * too would double the wake-ups of an exec storm.
   */
  readonly pollEvents = 0;
  readonly pending = false;
  /** Pairs opens with exec events; the processor asks it. */
  readonly names: ExecNames;
  /** What was marked. */
  readonly marks: MarkStats = { filesystems: 0, mounts: 0, failed: 0 };
  #marked = new Set<string>(); // table and mount id
  #tables = mountTables();
  #devices = new Set<string>(); // filesystems marked whole
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #head = new Uint8Array(HEADER_BYTES);
  #events: FanEvent[] = [];
  /**
   * Whether another source names `pid`'s newest exec exactly (the BPF exec facts' walked
   * path): its opens are then closed unread — no path, no header, no pairing.
   */
  namedElsewhere: ((pid: number) => boolean) | null = null;
  #onOverflow: () => void;
  #now: () => number;

  private constructor(fd: number, onOverflow: () => void, now: () => number) {
    this.fd = fd;
    this.#onOverflow = onOverflow;
    this.#now = now;
    this.names = new ExecNames(realPath, binfmtMiscHandlers());
  }

  /**
   * Opens the group and marks every mounted filesystem. `onOverflow`: the kernel dropped
   * events (reported as a `lost` line). Throws {@linkcode FanotifyUnavailable}.
   */
  static open(onOverflow: () => void, nowMs: () => number): FanotifySource {
    const c = libc();
    const fd = c.fanotify_init(
      FAN_INIT.CLASS_NOTIF | FAN_INIT.CLOEXEC | FAN_INIT.NONBLOCK,
      // O_NONBLOCK: an exec of a FIFO or a terminal (which fails) must not stall the reader
      // when the kernel opens it for us, or when its header is read.
      O.RDONLY | O.LARGEFILE | O.CLOEXEC | O.NOATIME | O.NONBLOCK,
    );
    if (fd < 0) throw new FanotifyUnavailable(errnoName(errno()));
    const s = new FanotifySource(fd, onOverflow, nowMs);
    s.markMounts();
    if (s.marks.filesystems + s.marks.mounts === 0) {
      c.close(fd);
      throw new FanotifyUnavailable(`no filesystem could be marked`);
    }
    return s;
  }

  /** The mount tables marked (see {@linkcode MOUNT_TABLES}). */
  get tables(): readonly { mountinfo: string; root: string }[] {
    return this.#tables;
  }

  /** Marks every mount not marked yet (at start, and when mounts change). */
  markMounts(): void {
    for (const t of this.#tables) this.#markTable(t.mountinfo, t.root);
    this.names.binfmtMisc = binfmtMiscHandlers();
  }

  #markTable(mountinfo: string, root: string): void {
    const text = readFileText(mountinfo);
    if (text === null) return;
    for (const m of parseMountinfo(text)) {
      const key = `${root}:${m.mountId}`;
      if (this.#marked.has(key) || PSEUDO_FS_TYPES.has(m.fsType)) continue;
      this.#marked.add(key);
      if (this.#devices.has(m.device)) continue; // the filesystem is marked already
      const path = latin1Bytes(root + m.mountPoint);
      if (this.#mark(FAN_MARK.FILESYSTEM, path)) {
        this.#devices.add(m.device);
        this.marks.filesystems++;
      } else if (this.#mark(FAN_MARK.MOUNT, path)) this.marks.mounts++;
      else this.marks.failed++;
    }
  }

  #mark(kind: number, path: Uint8Array): boolean {
    return libc().fanotify_mark(
      this.fd,
      FAN_MARK.ADD | kind,
      BigInt(FAN_EVENT.OPEN_EXEC),
      AT_FDCWD,
      path,
    ) === 0;
  }

  /**
   * Reads every queued open (the whole queue: see `exec_names.ts`), up to
   * {@linkcode MAX_READS_PER_DRAIN} buffers so a storm cannot hold the loop; appends nothing.
   */
  drain(_sink: BatchSink, _max: number): number {
    const c = libc();
    for (let reads = 0; reads < MAX_READS_PER_DRAIN; reads++) {
      const n = Number(c.read(this.fd, this.#buf, BigInt(this.#buf.length)));
      if (n < 0) {
        const e = errno();
        if (e === Errno.EAGAIN || e === Errno.EINTR) return 0;
        throw new LibcError("read(fanotify)", e);
      }
      if (n === 0) return 0;
      this.#events.length = 0;
      decodeFanEvents(this.#view, n, this.#events);
      const nowMs = this.#now();
      try {
        for (const ev of this.#events) this.#handle(ev, nowMs);
      } finally {
        closeAll(this.#opened);
        this.#opened.length = 0;
      }
      // The kernel fills the buffer while events fit: a short read emptied the queue, and
      // the read that would say EAGAIN is skipped (a syscall per wake-up).
      if (n <= this.#buf.length - SHORT_READ_MARGIN_BYTES) return 0;
    }
    return 0;
  }

  /** The descriptors the kernel opened for the events of one read, closed after it. */
  #opened: number[] = [];

  #handle(ev: FanEvent, nowMs: number): void {
    if (ev.mask & FAN_EVENT.Q_OVERFLOW) {
      this.names.overflow(nowMs);
      this.#onOverflow();
    }
    if (ev.fd === FAN_NOFD || ev.fd < 0) return;
    const c = libc();
    this.#opened.push(ev.fd);
    if (this.namedElsewhere?.(ev.pid)) {
      this.names.stats.unread++;
      return;
    }
    const linked = readLink(`/proc/self/fd/${ev.fd}`);
    if (linked === null) return;
    // Opened through another mount namespace's mount, a path can name here a file other
    // than the one that runs (`mount --bind ./payload /usr/bin/ls` in a private namespace).
    const path = sameFile(fileId(ev.fd, ""), linked) ? linked : NOT_HERE;
    let header = null;
    if (this.names.needsHeader(ev.pid, path)) {
      const got = Number(c.pread(ev.fd, this.#head, BigInt(HEADER_BYTES), 0n));
      header = got < 0 ? null : parseExecHeader(this.#head.subarray(0, got), (off, len) => {
        const more = new Uint8Array(len);
        const r = Number(c.pread(ev.fd, more, BigInt(len), BigInt(off)));
        return r < 0 ? null : more.subarray(0, r);
      });
    }
    this.names.open(ev.pid, path, header, nowMs);
  }

  /** Closes the group (its marks go with it). */
  close(): void {
    libc().close(this.fd);
  }
}

/**
 * Closes `fds`: a run of consecutive descriptors with one `close_range` (one read of a storm's
 * events gives hundreds, numbered in a row: one syscall instead of one per exec). Only
 * descriptors of the list are closed: a gap ends a run.
 */
function closeAll(fds: number[]): void {
  const c = libc();
  fds.sort((a, b) => a - b);
  for (let i = 0; i < fds.length;) {
    let j = i;
    while (j + 1 < fds.length && fds[j + 1] === fds[j] + 1) j++;
    if (j === i || c.close_range(fds[i], fds[j], 0) !== 0) {
      for (let k = i; k <= j; k++) c.close(fds[k]); // ENOSYS before Linux 5.9
    }
    i = j + 1;
  }
}

/**
 * Mount changes, as a source: a mountinfo file polls `POLLPRI` when its mount table
 * changes, and the sources that mark mounts (exec names, file changes) then mark what is
 * new. Two descriptors: the loop's poll consumes the change signal of the one it polls, the
 * other tells this source's drain.
 */
export class MountWatch implements Source {
  readonly name = "mounts";
  readonly fd: number;
  readonly pollEvents: number = POLL.PRI;
  readonly pending = false;
  #own: number;
  #pollfd = new Uint8Array(POLLFD.size);
  #pollView = new DataView(this.#pollfd.buffer);
  #changed: () => void;
  #checkedMs = -Infinity;

  /** Watches `mountinfo`, calling `changed` when it changes; throws {@linkcode LibcError} when it cannot be opened. */
  constructor(changed: () => void, mountinfo: string) {
    const c = libc();
    this.fd = c.open(cPath(mountinfo), O.RDONLY | O.CLOEXEC);
    this.#own = this.fd < 0 ? -1 : c.open(cPath(mountinfo), O.RDONLY | O.CLOEXEC);
    if (this.#own < 0) {
      const e = errno();
      if (this.fd >= 0) c.close(this.fd);
      throw new LibcError("open(mountinfo)", e);
    }
    this.#changed = changed;
    this.#pollView.setInt32(POLLFD.fd, this.#own, true);
    this.#pollView.setInt16(POLLFD.events, POLL.PRI, true);
  }

  /**
   * Marks new mounts when the table changed; appends nothing. Checked at most every
   * {@linkcode MOUNT_CHECK_MS}: a drain runs per wake-up, and a mount change wakes the loop
   * by itself.
   */
  drain(_sink: BatchSink, _max: number): number {
    const now = performance.now();
    if (now - this.#checkedMs < MOUNT_CHECK_MS) return 0;
    this.#checkedMs = now;
    this.#pollView.setInt16(POLLFD.revents, 0, true);
    if (libc().poll(this.#pollfd, 1n, 0) > 0) this.#changed();
    return 0;
  }

  /** Closes both descriptors. */
  close(): void {
    libc().close(this.fd);
    libc().close(this.#own);
  }
}
