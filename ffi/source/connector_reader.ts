/**
 * The connector's reader thread: a worker that does nothing but move datagrams from the
 * kernel's socket queue into proctree's own memory (`lib/event/backlog.ts`), so the queue
 * is emptied even while the processing side is behind (reading `/proc`, writing JSON, or
 * starved of CPU on a busy host). It polls the socket, reads with
 * `recvmmsg(MSG_DONTWAIT)` until it is empty, copies, pauses, and polls again. Nothing else
 * runs in it: no `/proc`, no decoding, no JSON. The loop takes the backlog first, then the
 * socket itself (`connector.ts`), in the kernel's order.
 *
 * **Armed only while the loop is behind** (`Source.readAhead`: its drains took a storm's
 * worth of events within 100 ms, or within a longer window while it was starved) and the
 * kernel's queue fills (`ARM_AT_QUEUED_SHARE` in `connector.ts`): else the thread sleeps on
 * a futex and costs nothing, and the loop, parked on the socket, takes each event as soon
 * as it comes. Over a small kernel queue it is armed all along
 * (`ALWAYS_ARMED_BELOW_RCVBUF_BYTES` in `connector.ts`).
 * Measured (BENCHMARKS.md): always armed, a thread woken per datagram cost 50 % more CPU
 * on a shell loop and 4.7 s over a fast storm's 150 000 datagrams.
 *
 * Its priority is raised alone (nice {@linkcode READER_NICE}, like auditd's
 * `priority_boost`, when `CAP_SYS_NICE` allows): it needs little CPU, but needs it soon.
 * The processing side stays at normal priority, so proctree never takes the host's CPU for
 * its own backlog.
 *
 * The thread's code is {@linkcode readerMain} and the backlog's writer, as text: a worker
 * started from a `data:` URL, so the bundle and the compiled binary carry it too. Both use
 * only their parameters and the constants the worker's preamble defines.
 *
 * @module
 */

import {
  backlogLock,
  backlogPending,
  backlogRead,
  backlogUnlock,
  type BacklogVisitor,
  backlogWrite,
  CTL,
  MARK,
  MAX_ENTRY_BYTES,
  READER_STATE,
} from "../../lib/event/backlog.ts";
import {
  EFD,
  Errno,
  errno,
  errnoName,
  libc,
  LibcError,
  libcSymbols,
  POLL,
  POLLFD,
  SOCK,
  SOCKADDR_NL,
} from "../libc.ts";

/** Bytes of the backlog ring by default: ~420 000 events of 80 bytes (a fast storm is 150 000). */
export const DEFAULT_BACKLOG_BYTES: number = 32 * 1024 * 1024;

/** The reader thread's nice value, asked for that thread alone (root or `CAP_SYS_NICE`). */
export const READER_NICE = -10;

/**
 * The armed thread pauses up to this long after each read before it polls again, so a
 * read takes many datagrams, not one: woken for every datagram, it took 4.7 s of CPU over a
 * fast storm's 150 000 (more than the whole processing side), 1.1 s with 2 ms pauses, 0.33
 * s with 50 ms. Less when the socket's queue could fill sooner (`net.core.rmem_max` caps it
 * without `CAP_NET_ADMIN`): a pause lets the queue fill to a quarter at most, at the rate
 * of the last read.
 */
export const READER_PAUSE_MS = 50;

/** Kernel memory a queued datagram takes, at most (its `skb`), to size pauses by. */
const QUEUED_DATAGRAM_BYTES = 1024;

/** How long the reader thread may take to start before proctree reads on its own thread. */
const START_TIMEOUT_MS = 3000;

/** How long closing waits for the thread to leave its `poll`. */
const STOP_TIMEOUT_MS = 1000;

// struct mmsghdr on LP64: struct msghdr (56 bytes) then unsigned msg_len.
const MMSGHDR = {
  size: 64,
  name: 0,
  namelen: 8,
  iov: 16,
  iovlen: 24,
  control: 32,
  controllen: 40,
  flags: 48,
  len: 56,
} as const;
const IOVEC = { size: 16, base: 0, len: 8 } as const;

/** What a `recvmmsg` batch is made of: sizes and the kernel's struct layouts. */
export const RECV_LAYOUT = {
  /** Datagrams fetched per `recvmmsg` call. */
  batch: 64,
  /** Bytes per datagram slot; a kernel proc event is 76, anything longer is foreign. */
  slotBytes: MAX_ENTRY_BYTES,
  nameBytes: SOCKADDR_NL.size,
  namePid: SOCKADDR_NL.pid,
  mmsghdr: MMSGHDR,
  iovec: IOVEC,
  dontwait: SOCK.MSG_DONTWAIT,
  trunc: SOCK.MSG_TRUNC,
} as const;

/** The buffers of one `recvmmsg` batch, headers pointing at the slots. */
export interface RecvBuffers {
  /** The `struct mmsghdr` array handed to `recvmmsg`. */
  hdrs: Uint8Array;
  /** A view of `hdrs`. */
  hdrView: DataView;
  /** Datagram slots, {@linkcode RECV_LAYOUT}`.slotBytes` each. */
  slots: Uint8Array;
  /** A view of `slots`. */
  slotView: DataView;
  /** A view of the senders' addresses (`sockaddr_nl`, one per slot). */
  nameView: DataView;
  /** The `struct iovec`s the headers point at: held here, or the collector frees them. */
  iovs: Uint8Array;
}

/** Allocates a batch's buffers and points each header at its slot. Runs in both threads. */
export function recvBuffers(L: typeof RECV_LAYOUT): RecvBuffers {
  const slots = new Uint8Array(L.batch * L.slotBytes);
  const names = new Uint8Array(L.batch * L.nameBytes);
  const hdrs = new Uint8Array(L.batch * L.mmsghdr.size);
  const iovs = new Uint8Array(L.batch * L.iovec.size);
  const hv = new DataView(hdrs.buffer);
  const iv = new DataView(iovs.buffer);
  const at = (b: Uint8Array) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
  const [slotsAt, namesAt, iovsAt] = [at(slots), at(names), at(iovs)];
  for (let i = 0; i < L.batch; i++) {
    iv.setBigUint64(i * L.iovec.size + L.iovec.base, slotsAt + BigInt(i * L.slotBytes), true);
    iv.setBigUint64(i * L.iovec.size + L.iovec.len, BigInt(L.slotBytes), true);
    const h = i * L.mmsghdr.size;
    hv.setBigUint64(h + L.mmsghdr.name, namesAt + BigInt(i * L.nameBytes), true);
    hv.setUint32(h + L.mmsghdr.namelen, L.nameBytes, true);
    hv.setBigUint64(h + L.mmsghdr.iov, iovsAt + BigInt(i * L.iovec.size), true);
    hv.setBigUint64(h + L.mmsghdr.iovlen, 1n, true);
  }
  return {
    hdrs,
    hdrView: hv,
    slots,
    slotView: new DataView(slots.buffer),
    nameView: new DataView(names.buffer),
    iovs,
  };
}

const READER_SYMBOLS = libcSymbols([
  "poll",
  "recvmmsg",
  "setpriority",
  "syscall",
  "__errno_location",
]);

type ReaderLibc = Deno.DynamicLibrary<typeof READER_SYMBOLS>["symbols"];

/** What the thread is given: descriptors, shared memory, constants. */
interface ReaderInit {
  symbols: typeof READER_SYMBOLS;
  /** The connector socket. */
  sock: number;
  /** Readable once the thread is to stop. */
  stopFd: number;
  ctl: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  nice: number;
  /** The longest pause after a read, in ms. */
  pauseMs: number;
  /** How many datagrams the socket's queue holds. */
  queueDatagrams: number;
  layout: typeof RECV_LAYOUT;
  errnos: { EAGAIN: number; EINTR: number; ENOBUFS: number };
  pollfd: typeof POLLFD;
  pollIn: number;
  /** `SYS_gettid`. */
  gettid: number;
}

/**
 * The thread's whole work (runs in the worker, from its text): while armed, poll, read
 * until the socket is empty, copy each datagram into the backlog, pause; disarmed, sleep.
 * Loss stays in order: an ENOBUFS, or datagrams the full ring could not take, go in as a
 * mark before the next datagram that fits.
 */
function readerMain(lib: ReaderLibc, init: ReaderInit): void {
  const L = init.layout;
  const E = init.errnos;
  const ctl = new Int32Array(init.ctl);
  const bytes = new Uint8Array(init.ring);
  const view = new DataView(init.ring);
  const errnoView = new Deno.UnsafePointerView(lib.__errno_location()!);
  const tid = Number(lib.syscall(BigInt(init.gettid), 0n, null, 0n));
  Atomics.store(ctl, CTL.tid, tid);
  if (init.nice !== 0 && lib.setpriority(0, tid, init.nice) === 0) {
    Atomics.store(ctl, CTL.nice, init.nice);
  }
  const b = recvBuffers(L);
  const P = init.pollfd;
  const fds = new Uint8Array(2 * P.size);
  const fv = new DataView(fds.buffer);
  fv.setInt32(P.fd, init.sock, true);
  fv.setInt16(P.events, init.pollIn, true);
  fv.setInt32(P.size + P.fd, init.stopFd, true);
  fv.setInt16(P.size + P.events, init.pollIn, true);
  const count = new Uint8Array(4);
  const countView = new DataView(count.buffer);
  let overrunUnsaid = false;
  let dropsUnsaid = 0;
  /** Puts the loss marks owed; false when the ring is full. */
  const marks = (): boolean => {
    if (overrunUnsaid) {
      if (!backlogWrite(ctl, view, bytes, MARK.overrun, count, 0, 0)) return false;
      overrunUnsaid = false;
    }
    if (dropsUnsaid > 0) {
      countView.setUint32(0, dropsUnsaid, true);
      if (!backlogWrite(ctl, view, bytes, MARK.dropped, count, 0, 4)) return false;
      dropsUnsaid = 0;
    }
    return true;
  };
  /** Puts the marks owed, then the datagram; false when the ring is full. */
  const put = (src: Uint8Array, from: number, len: number): boolean =>
    marks() && backlogWrite(ctl, view, bytes, len, src, from, len);
  Atomics.store(ctl, CTL.state, READER_STATE.running);
  Atomics.notify(ctl, CTL.state);
  let lastReadMs = performance.now();
  while (Atomics.load(ctl, CTL.stop) === 0) {
    if (Atomics.load(ctl, CTL.armed) === 0) {
      Atomics.wait(ctl, CTL.armed, 0); // asleep until the loop is behind (or stops)
      continue;
    }
    // Armed: the loop is behind, maybe starved; read as the datagrams come. The poll's
    // timeout bounds how long a disarmed thread keeps watching the socket.
    lib.poll(fds, 2n, init.pauseMs);
    let got = 0;
    while (Atomics.load(ctl, CTL.stop) === 0) {
      backlogLock(ctl);
      const n = lib.recvmmsg(init.sock, b.hdrs, L.batch, L.dontwait, null);
      const e = n < 0 ? errnoView.getInt32(0) : 0;
      if (e === E.ENOBUFS) {
        Atomics.add(ctl, CTL.overruns, 1);
        overrunUnsaid = true;
      }
      for (let i = 0; i < n; i++) {
        const h = i * L.mmsghdr.size;
        b.hdrView.setUint32(h + L.mmsghdr.namelen, L.nameBytes, true);
        if (b.nameView.getUint32(i * L.nameBytes + L.namePid, true) !== 0) {
          Atomics.add(ctl, CTL.foreign, 1);
          continue;
        }
        if (b.hdrView.getInt32(h + L.mmsghdr.flags, true) & L.trunc) {
          Atomics.add(ctl, CTL.truncated, 1);
        }
        const len = Math.min(b.hdrView.getUint32(h + L.mmsghdr.len, true), L.slotBytes);
        Atomics.add(ctl, CTL.datagrams, 1);
        if (!put(b.slots, i * L.slotBytes, len)) {
          dropsUnsaid++;
          Atomics.add(ctl, CTL.dropped, 1);
        }
      }
      // Marks owed with no datagram after them yet go in alone: a loss is told without
      // waiting for the next event (a full ring retries at the next poll's timeout).
      if (n <= 0) marks();
      backlogUnlock(ctl);
      if (n > 0) got += n;
      else if (e === E.EAGAIN) break;
      else if (e !== E.EINTR && e !== E.ENOBUFS) {
        Atomics.store(ctl, CTL.error, e);
        Atomics.store(ctl, CTL.stop, 1);
      }
    }
    // Then a pause (ended early by a stop), so a read takes many datagrams, not one; no
    // longer than lets the socket's queue fill to a quarter at the rate just seen.
    const now = performance.now();
    const perMs = got / Math.max(1, now - lastReadMs);
    lastReadMs = now;
    const pauseMs = Math.min(
      init.pauseMs,
      Math.floor(init.queueDatagrams / 4 / Math.max(perMs, 1e-3)),
    );
    if (got > 0 && pauseMs > 0) lib.poll(fds.subarray(P.size), 1n, pauseMs);
  }
  Atomics.store(ctl, CTL.state, READER_STATE.exited);
  Atomics.notify(ctl, CTL.state);
}

/** The worker's source: the constants, the backlog's writer and lock, the reader. */
function workerSource(): string {
  return [
    `const CTL = ${JSON.stringify(CTL)};`,
    `const MARK = ${JSON.stringify(MARK)};`,
    `const READER_STATE = ${JSON.stringify(READER_STATE)};`,
    `const backlogWrite = ${backlogWrite.toString()};`,
    `const backlogLock = ${backlogLock.toString()};`,
    `const backlogUnlock = ${backlogUnlock.toString()};`,
    `const recvBuffers = ${recvBuffers.toString()};`,
    `const readerMain = ${readerMain.toString()};`,
    // An exception ends the thread as an error the loop reports (an uncaught one in a
    // worker would end proctree while its loop waits).
    `self.onmessage = (e) => {`,
    `  self.onmessage = null;`,
    `  const ctl = new Int32Array(e.data.ctl);`,
    `  try {`,
    `    readerMain(Deno.dlopen("libc.so.6", e.data.symbols).symbols, e.data);`,
    `  } catch {`,
    `    Atomics.store(ctl, CTL.error, -1);`,
    `    Atomics.store(ctl, CTL.state, READER_STATE.exited);`,
    `    Atomics.notify(ctl, CTL.state);`,
    `  }`,
    `  self.close();`,
    `};`,
  ].join("\n");
}

/** `gettid(2)`'s number (no libc wrapper in older glibc). */
const SYS_GETTID = Deno.build.arch === "aarch64" ? 178 : 186;

/** Counters of the reader thread (see {@linkcode CTL}). */
export interface ReaderCounters {
  /** Datagrams it received from the kernel. */
  datagrams: number;
  /** ENOBUFS reports (the kernel's queue overflowed). */
  overruns: number;
  /** Datagrams not from the kernel (dropped). */
  foreign: number;
  /** Datagrams cut short by their slot. */
  truncated: number;
  /** Datagrams the full backlog could not take. */
  dropped: number;
}

/** The processing side's handle on the reader thread. */
export class ReaderThread {
  /** The backlog's size in bytes. */
  readonly backlogBytes: number;
  #stopFd: number;
  #worker: Worker;
  #ctl: Int32Array;
  #view: DataView;
  #closed = false;

  private constructor(
    stopFd: number,
    worker: Worker,
    ctl: SharedArrayBuffer,
    ring: SharedArrayBuffer,
  ) {
    this.#stopFd = stopFd;
    this.#worker = worker;
    this.#ctl = new Int32Array(ctl);
    this.#view = new DataView(ring);
    this.backlogBytes = ring.byteLength;
  }

  /**
   * Starts the thread (disarmed) on `sock`, whose receive buffer is `rcvbufBytes` (as the
   * kernel reports it); returns it, or why it could not start (then the caller reads on
   * its own thread only).
   */
  static start(
    sock: number,
    rcvbufBytes: number,
    backlogBytes: number = DEFAULT_BACKLOG_BYTES,
  ): ReaderThread | string {
    const c = libc();
    const stopFd = c.eventfd(0, EFD.CLOEXEC | EFD.NONBLOCK);
    if (stopFd < 0) return `eventfd: ${errnoName(errno())}`;
    const ctl = new SharedArrayBuffer(CTL.words * 4);
    const ring = new SharedArrayBuffer(backlogBytes & ~3);
    let worker: Worker;
    try {
      worker = new Worker(
        "data:application/javascript," + encodeURIComponent(workerSource()),
        { type: "module", name: "proctree-reader" },
      );
    } catch (e) {
      c.close(stopFd);
      return `cannot start a worker: ${(e as Error).message}`;
    }
    const t = new ReaderThread(stopFd, worker, ctl, ring);
    worker.onerror = (e) => {
      e.preventDefault(); // said by the state below, not by crashing the loop
      Atomics.store(t.#ctl, CTL.error, -1);
      Atomics.store(t.#ctl, CTL.state, READER_STATE.exited);
    };
    const init: ReaderInit = {
      symbols: READER_SYMBOLS,
      sock,
      stopFd,
      ctl,
      ring,
      nice: READER_NICE,
      pauseMs: READER_PAUSE_MS,
      queueDatagrams: Math.max(1, Math.floor(rcvbufBytes / QUEUED_DATAGRAM_BYTES)),
      layout: RECV_LAYOUT,
      errnos: { EAGAIN: Errno.EAGAIN, EINTR: Errno.EINTR, ENOBUFS: Errno.ENOBUFS },
      pollfd: POLLFD,
      pollIn: POLL.IN,
      gettid: SYS_GETTID,
    };
    worker.postMessage(init);
    Atomics.wait(t.#ctl, CTL.state, READER_STATE.starting, START_TIMEOUT_MS);
    if (Atomics.load(t.#ctl, CTL.state) !== READER_STATE.running) {
      t.close();
      return `the reader thread did not start within ${START_TIMEOUT_MS} ms`;
    }
    return t;
  }

  /** The reader thread's kernel thread id. */
  get tid(): number {
    return Atomics.load(this.#ctl, CTL.tid);
  }

  /** The nice value the thread got (0: it runs at the default priority). */
  get nice(): number {
    return Atomics.load(this.#ctl, CTL.nice);
  }

  /** True while the thread reads (the loop is behind). */
  get armed(): boolean {
    return Atomics.load(this.#ctl, CTL.armed) !== 0;
  }

  /** Arms the thread (it reads the socket as datagrams come) or lets it sleep. */
  arm(on: boolean): void {
    Atomics.store(this.#ctl, CTL.armed, on ? 1 : 0);
    if (on) Atomics.notify(this.#ctl, CTL.armed);
  }

  /** Entries wait in the backlog. */
  get pending(): boolean {
    return backlogPending(this.#ctl);
  }

  /** Its counters now. */
  counters(): ReaderCounters {
    const a = this.#ctl;
    return {
      datagrams: Atomics.load(a, CTL.datagrams),
      overruns: Atomics.load(a, CTL.overruns),
      foreign: Atomics.load(a, CTL.foreign),
      truncated: Atomics.load(a, CTL.truncated),
      dropped: Atomics.load(a, CTL.dropped),
    };
  }

  /**
   * Takes up to `max` datagrams out of the backlog, in order. Throws the error that ended
   * the thread once everything it read was taken.
   */
  read(max: number, visit: BacklogVisitor): number {
    const n = backlogRead(this.#ctl, this.#view, this.backlogBytes, max, visit);
    const err = Atomics.load(this.#ctl, CTL.error);
    if (err !== 0 && !this.pending) {
      throw new LibcError("recvmmsg (reader thread)", err < 0 ? Errno.EIO : err);
    }
    return n;
  }

  /** While held, the thread does not read: the socket may be read here, in order. */
  lock(): void {
    backlogLock(this.#ctl);
  }

  /** Lets the thread read again. */
  unlock(): void {
    backlogUnlock(this.#ctl);
  }

  /** Stops the thread (it leaves its wait or `poll` at once) and closes its descriptor. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#ctl, CTL.stop, 1);
    this.arm(true);
    const one = new Uint8Array(8);
    one[0] = 1;
    libc().write(this.#stopFd, one, 8n);
    Atomics.wait(this.#ctl, CTL.state, READER_STATE.running, STOP_TIMEOUT_MS);
    this.#worker.terminate();
    libc().close(this.#stopFd);
  }
}
