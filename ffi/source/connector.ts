/**
 * The proc connector socket, the first {@linkcode Source}: subscribe, confirm, read in
 * batches, unsubscribe.
 *
 * The loop parks on the socket (`ffi/poller.ts`); once readable, it drains with synchronous
 * `recvmmsg(MSG_DONTWAIT)` calls: one FFI crossing per batch of up to {@linkcode BATCH}
 * datagrams, no await per event, each datagram decoded into the loop's batch as it arrives.
 *
 * @module
 */

import { SourceUnavailable } from "../../lib/pipeline/unavailable.ts";
import { readFileText } from "../procfs.ts";
import {
  Clock,
  clockNs,
  Errno,
  errno,
  errnoName,
  libc,
  LibcError,
  netlinkAddress,
  POLL,
  POLLFD,
  queuedBytes,
  setRcvbuf,
  SOCK,
  SOCKADDR_NL,
} from "../libc.ts";
import {
  type Decoded,
  decodeDatagram,
  encodeMcastRequest,
  MCAST_OP,
  NETLINK_CONNECTOR,
  WHAT_ALL,
} from "../../lib/event/wire.ts";
import type { BatchSink, Source } from "../../lib/pipeline/loop.ts";
import {
  DEFAULT_BACKLOG_BYTES,
  ReaderThread,
  RECV_LAYOUT,
  type RecvBuffers,
  recvBuffers,
} from "./connector_reader.ts";

const { AF_NETLINK, MSG_DONTWAIT, MSG_TRUNC } = SOCK;
const { batch: BATCH, slotBytes: SLOT_BYTES, mmsghdr: MMSGHDR } = RECV_LAYOUT;

/**
 * Default receive buffer asked for: room for a whole fast storm. Linux doubles what is
 * asked (for its bookkeeping) and reports the doubled size, and charges kernel memory only
 * while datagrams wait in it: ~500 B each. Measured (BENCHMARKS.md, issue 26): a 50k
 * vfork+exec storm from `../shared/storm` queued up to 75–91 MB while proctree caught up,
 * so 16 MiB (32 MB) lost 60 % of it and 64 MiB (128 MB) held it with little margin; 128 MiB
 * holds it with 2.8× to spare. Worst case, proctree stopped during a storm: 256 MB of kernel
 * memory until it reads again (measured: 268 MB, then drops, counted). Without
 * `CAP_NET_ADMIN`, `net.core.rmem_max` caps it.
 */
export const DEFAULT_RCVBUF_BYTES: number = 128 * 1024 * 1024;

/**
 * Below this receive buffer (as the kernel reports it, doubled: 16 MiB asked) the reader
 * thread reads all along, not only while the loop is behind: the queue would fill before
 * the loop noticed (measured, 208k on a busy host: 879 events lost in 1 run of 3 when
 * armed only while behind).
 */
export const ALWAYS_ARMED_BELOW_RCVBUF_BYTES: number = 32 * 1024 * 1024;

/**
 * Over a larger queue, the reader thread is armed once the loop is behind **and** the
 * kernel's queue holds this share of the receive buffer (`SO_MEMINFO`, checked at each
 * drain while behind): a loop that keeps the queue short needs no second reader, and an
 * armed thread costs 7–9 % more CPU per storm event (BENCHMARKS.md). In the fast storm,
 * quiet or beside two busy loops, the default queue never reached the mark. An eighth of
 * the default queue is 32 MB, ~50 000 datagrams: seconds of a fast storm before it is full.
 */
export const ARM_AT_QUEUED_SHARE: number = 1 / 8;

/** Why the connector could not be opened; `code` is stable for scripts and tests. */
export class ConnectorError extends SourceUnavailable {
  /** `code`: `EPERM`, `NO_ACK`, `NO_CONNECTOR`, `NACK` or an errno name; a one-line message. */
  constructor(code: string, message: string) {
    super("", code, message);
  }
}

/** Options of {@linkcode ProcConnector.open}. */
export interface ConnectorOptions {
  /** Receive buffer to request, in bytes. */
  rcvbufBytes?: number;
  /**
   * Kernel-side event filter (`WHAT` bits). Applied where the kernel takes it; `kernelFilter`
   * on the connector says whether it was. Callers filter in user space as well.
   */
  eventMask?: number;
  /** How long to wait for the kernel to confirm the subscription, in ms. */
  ackTimeoutMs?: number;
  /**
   * While the loop is behind, datagrams are read by a thread of their own into a backlog
   * of this many bytes (`connector_reader.ts`; default {@linkcode DEFAULT_BACKLOG_BYTES});
   * 0: no such thread, the socket is read by the loop alone, as it drains.
   */
  backlogBytes?: number;
}

/** Receives each datagram: bytes `[offset, offset + length)` of `view`. */
export type DatagramSink = (view: DataView, offset: number, length: number) => void;

/** Counters the connector keeps about the socket itself. */
export interface ConnectorStats {
  /** Datagrams received from the kernel. */
  datagrams: number;
  /** Times the kernel reported a receive-buffer overrun (`ENOBUFS`). */
  overruns: number;
  /** Datagrams dropped because they did not come from the kernel (spoofing). */
  foreign: number;
  /** Datagrams cut short because they did not fit a slot. */
  truncated: number;
  /** Datagrams the reader thread's full backlog could not take (counted lost as well). */
  backlogDropped?: number;
}

/**
 * The one line for an EPERM at `step`. Many kernels ≥ 6.6 let any user of the initial
 * namespaces listen, but not all (6.18 here refuses): the refusal is what the kernel said,
 * and the advice names what works on every kernel.
 */
function refusal(step: string): string {
  if (!inInitialUserNamespace()) {
    return `the proc connector refused this process (${step}: EPERM): ` +
      "it is not in the initial user namespace (a container?)";
  }
  return `this kernel refuses unprivileged proc-connector listeners (${step}: EPERM): ` +
    "run as root or with CAP_NET_ADMIN";
}

/** False when `/proc/self/uid_map` shows a user namespace other than the host's. */
function inInitialUserNamespace(): boolean {
  const map = readFileText("/proc/self/uid_map");
  return map === null || map.trim().split(/\s+/).join(" ") === "0 0 4294967295";
}

function namespaceHint(): string {
  if (!inInitialUserNamespace()) {
    return "this process is not in the initial user namespace (a container?)";
  }
  return "not in the initial user/pid namespace (a container?), or the connector is disabled";
}

/** An open, subscribed proc connector socket. */
export class ProcConnector implements Source {
  /** Source name. */
  readonly name = "connector";
  /** The socket's file descriptor. */
  readonly fd: number;
  /** The reader thread, or null when datagrams are read on the loop's thread. */
  get reader(): ReaderThread | null {
    return this.#reader;
  }
  /** Why there is no reader thread (null: there is one, or none was asked for). */
  readerNote: string | null = null;
  /** Receive buffer the kernel granted, in bytes (as `getsockopt` reports it: doubled). */
  readonly rcvbufBytes: number;
  /** Receive buffer asked for, in bytes. */
  readonly askedRcvbufBytes: number;
  /**
   * True when the kernel applies the event filter (so `cn_msg.seq` gaps are not losses):
   * known by asking it, never from its version (see `#subscribe`).
   */
  get kernelFilter(): boolean {
    return this.#kernelFilter;
  }
  /** Socket counters. */
  readonly stats: ConnectorStats = { datagrams: 0, overruns: 0, foreign: 0, truncated: 0 };
  /**
   * CLOCK_MONOTONIC when the kernel acknowledged the subscription: every event stamped
   * later is delivered (or counted lost); one stamped earlier may never have been sent.
   */
  get subscribedNs(): number {
    return this.#subscribedNs;
  }

  #closed = false;
  #subscribedNs = 0;
  #kernelFilter = false;
  #pending: Uint8Array[] = [];
  #recv: RecvBuffers = recvBuffers(RECV_LAYOUT);
  #reader: ReaderThread | null = null;
  #alwaysArmed = false;
  /** The loop is behind (`readAhead`): the thread is armed once the queue fills. */
  #behind = false;

  private constructor(fd: number, rcvbuf: [asked: number, granted: number]) {
    this.fd = fd;
    [this.askedRcvbufBytes, this.rcvbufBytes] = rcvbuf;
  }

  /**
   * Opens the socket, subscribes and waits for the kernel's acknowledgement.
   * Throws {@linkcode ConnectorError} with a one-line message naming the cause.
   */
  static open(options: ConnectorOptions = {}): ProcConnector {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK.DGRAM | SOCK.NONBLOCK | SOCK.CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0) {
      const e = errno();
      if (e === Errno.EPROTONOSUPPORT || e === Errno.EAFNOSUPPORT) {
        throw new ConnectorError(
          "NO_CONNECTOR",
          `this kernel has no netlink connector (socket: ${errnoName(e)})`,
        );
      }
      throw new ConnectorError(errnoName(e), `cannot open a netlink socket: ${errnoName(e)}`);
    }
    try {
      const asked = options.rcvbufBytes ?? DEFAULT_RCVBUF_BYTES;
      const granted = setRcvbuf(fd, asked);
      const addr = netlinkAddress(1 /* CN_IDX_PROC's group bit */);
      if (c.bind(fd, addr, addr.length) !== 0) {
        const e = errno();
        throw new ConnectorError(
          errnoName(e),
          e === Errno.EPERM
            ? refusal("bind")
            : `cannot bind to the proc connector: ${errnoName(e)}`,
        );
      }
      const wanted = options.eventMask === undefined
        ? WHAT_ALL
        : (options.eventMask & WHAT_ALL) >>> 0;
      const conn = new ProcConnector(fd, [asked, granted]);
      const filterKnown = conn.#subscribe(options.ackTimeoutMs ?? 2000, wanted !== WHAT_ALL);
      conn.#subscribedNs = clockNs(Clock.MONOTONIC);
      if (filterKnown) {
        conn.#kernelFilter = true;
        // The kernel acks this too, but its own filter then drops the ack (what = NONE).
        conn.#request(MCAST_OP.LISTEN, wanted);
      }
      const backlog = options.backlogBytes ?? DEFAULT_BACKLOG_BYTES;
      if (backlog > 0) {
        const r = ReaderThread.start(fd, granted, backlog);
        if (typeof r === "string") conn.readerNote = r;
        else {
          conn.#reader = r;
          // A queue that holds less than a storm's first second cannot wait for the loop
          // to find itself behind: the thread reads all along then.
          conn.#alwaysArmed = granted < ALWAYS_ARMED_BELOW_RCVBUF_BYTES;
          if (conn.#alwaysArmed) r.arm(true);
        }
      }
      return conn;
    } catch (e) {
      c.close(fd);
      throw e;
    }
  }

  #request(op: number, eventMask?: number): number {
    const nonce = (crypto.getRandomValues(new Uint32Array(1))[0] | 1) >>> 1;
    const msg = encodeMcastRequest(op, { portId: libc().getpid(), seq: 0, ack: nonce, eventMask });
    const n = libc().send(this.fd, msg, BigInt(msg.length), 0);
    if (Number(n) !== msg.length) {
      const e = errno();
      throw new ConnectorError(
        errnoName(e),
        e === Errno.EPERM
          ? refusal("subscribe")
          : `cannot send the subscription request: ${errnoName(e)}`,
      );
    }
    return nonce;
  }

  /**
   * Subscribes and waits for the kernel's reply. With `probeFilter`, first asks in the 6.6
   * `proc_input` form (all events): a kernel that knows the form acks it, an older one
   * ignores it without a word; the plain request that follows is acked by both, so whether
   * the first was acked before it tells, with no wait, whether the kernel can filter.
   */
  #subscribe(timeoutMs: number, probeFilter: boolean): boolean {
    const probe = probeFilter ? this.#request(MCAST_OP.LISTEN, WHAT_ALL) : -1;
    let filterAcked = false;
    const nonce = this.#request(MCAST_OP.LISTEN);
    const deadline = clockNs(Clock.MONOTONIC) + timeoutMs * 1e6;
    const decoded: Decoded[] = [];
    const pollfd = new Uint8Array(POLLFD.size);
    const pv = new DataView(pollfd.buffer);
    pv.setInt32(POLLFD.fd, this.fd, true);
    pv.setInt16(POLLFD.events, POLL.IN, true);
    for (;;) {
      const left = Math.ceil((deadline - clockNs(Clock.MONOTONIC)) / 1e6);
      if (left <= 0) break;
      pv.setInt16(POLLFD.revents, 0, true);
      if (libc().poll(pollfd, 1n, left) <= 0) continue;
      let acked = -1;
      this.receive((view, offset, length) => {
        decoded.length = 0;
        decodeDatagram(view, offset, length, decoded);
        const d = decoded[0];
        if (decoded.length === 1 && d.what === "ack") {
          if (d.ack === ((nonce + 1) >>> 0)) acked = d.err;
          else if (probe >= 0 && d.ack === ((probe + 1) >>> 0) && !d.err) filterAcked = true;
        }
        // Kept for the first real drain: events that raced the reply, and the reply itself,
        // whose cn_msg.seq the loss accounting needs.
        this.#pending.push(new Uint8Array(view.buffer, offset, length).slice());
      });
      if (acked === 0) return filterAcked;
      if (acked > 0) {
        throw new ConnectorError(
          "NACK",
          `the proc connector refused to subscribe: ${errnoName(acked)}`,
        );
      }
    }
    throw new ConnectorError(
      "NO_ACK",
      `no reply from the proc connector within ${timeoutMs} ms: ${namespaceHint()}`,
    );
  }

  /**
   * True while datagrams wait that the polled descriptor does not show: read during the
   * subscription, or in the reader thread's backlog.
   */
  get pending(): boolean {
    return this.#pending.length > 0 || (this.#reader?.pending ?? false);
  }

  /**
   * The {@linkcode Source} drain: decodes up to `max` datagrams into `sink.batch`, calling
   * `sink.decoded` after each one.
   */
  drain(sink: BatchSink, max: number): number {
    const batch = sink.batch;
    return this.receive(
      (view, offset, length) => {
        const from = batch.length;
        decodeDatagram(view, offset, length, batch);
        sink.decoded(from);
      },
      () => sink.overrun(),
      max,
    );
  }

  /**
   * Hands every datagram available now to `sink`, undecoded, in the kernel's order, without
   * blocking: those read during the subscription, then the reader thread's backlog, then,
   * with the thread held off, the backlog's last entries and the socket itself until it is
   * empty — so a drain ends only when nothing the kernel sent before its end is left
   * unread (the sink may read `/proc` meanwhile, and what a process did during that read
   * must be in this drain). Returns the number delivered; 0 means nothing was waiting.
   * `onOverrun` runs where events were dropped (the kernel's queue or the backlog was full).
   */
  receive(sink: DatagramSink, onOverrun?: () => void, maxDatagrams = Infinity): number {
    let delivered = 0;
    if (this.#pending.length) {
      for (const p of this.#pending.splice(0)) {
        sink(new DataView(p.buffer), 0, p.length);
        delivered++;
      }
    }
    const r = this.#reader;
    if (r === null) {
      return delivered + this.#receiveSocket(sink, onOverrun, maxDatagrams - delivered);
    }
    if (this.#behind && !r.armed) this.#armIfFilling(r);
    const visit = { datagram: sink, loss: () => onOverrun?.() };
    delivered += r.read(maxDatagrams - delivered, visit);
    if (delivered >= maxDatagrams) return this.#readerStats(delivered);
    r.lock();
    try {
      delivered += r.read(maxDatagrams - delivered, visit);
      if (delivered < maxDatagrams) {
        delivered += this.#receiveSocket(sink, onOverrun, maxDatagrams - delivered);
      }
    } finally {
      r.unlock();
    }
    return this.#readerStats(delivered);
  }

  /** The socket counters: the thread's and what this thread read itself. */
  #readerStats(delivered: number): number {
    const c = this.#reader!.counters();
    const s = this.stats;
    s.datagrams = c.datagrams + this.#own.datagrams;
    s.overruns = c.overruns + this.#own.overruns;
    s.foreign = c.foreign + this.#own.foreign;
    s.truncated = c.truncated + this.#own.truncated;
    s.backlogDropped = c.dropped;
    return delivered;
  }

  #own: ConnectorStats = { datagrams: 0, overruns: 0, foreign: 0, truncated: 0 };

  /** Reads the socket itself until it is empty or `max` datagrams were delivered. */
  #receiveSocket(sink: DatagramSink, onOverrun: (() => void) | undefined, max: number): number {
    const own = this.#reader === null ? this.stats : this.#own;
    const c = libc();
    const b = this.#recv;
    const hv = b.hdrView;
    let delivered = 0;
    while (delivered < max) {
      const n = c.recvmmsg(this.fd, b.hdrs, BATCH, MSG_DONTWAIT, null);
      if (n < 0) {
        const e = errno();
        if (e === Errno.EAGAIN) break;
        if (e === Errno.EINTR) continue;
        if (e === Errno.ENOBUFS) {
          own.overruns++;
          onOverrun?.();
          continue;
        }
        throw new LibcError("recvmmsg", e);
      }
      for (let i = 0; i < n; i++) {
        const h = i * MMSGHDR.size;
        const len = hv.getUint32(h + MMSGHDR.len, true);
        const flags = hv.getInt32(h + MMSGHDR.flags, true);
        hv.setUint32(h + MMSGHDR.namelen, SOCKADDR_NL.size, true);
        if (b.nameView.getUint32(i * SOCKADDR_NL.size + SOCKADDR_NL.pid, true) !== 0) {
          own.foreign++;
          continue;
        }
        if (flags & MSG_TRUNC) own.truncated++;
        own.datagrams++;
        delivered++;
        sink(b.slotView, i * SLOT_BYTES, Math.min(len, SLOT_BYTES));
      }
      // No early exit on a short batch: the sink may have read /proc meanwhile, and what
      // the process did during that read must be in this drain. Only EAGAIN ends it.
    }
    return delivered;
  }

  /**
   * While the loop is behind and the kernel's queue fills ({@linkcode ARM_AT_QUEUED_SHARE}),
   * the reader thread reads ahead (`connector_reader.ts`); else it sleeps.
   */
  readAhead(on: boolean): void {
    if (this.#alwaysArmed || this.#reader === null) return;
    this.#behind = on;
    if (on) this.#armIfFilling(this.#reader);
    else this.#reader.arm(false);
  }

  #armIfFilling(r: ReaderThread): void {
    const queued = queuedBytes(this.fd);
    if (queued !== null && queued < this.rcvbufBytes * ARM_AT_QUEUED_SHARE) return;
    r.arm(true);
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops the reader thread, unsubscribes and closes the socket (after any poll on it has ended). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader?.close();
    try {
      this.#request(MCAST_OP.IGNORE);
    } catch { /* the socket is going away anyway */ }
    libc().close(this.fd);
  }
}
