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

const { AF_NETLINK, MSG_DONTWAIT, MSG_TRUNC } = SOCK;
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

/** Datagrams fetched per `recvmmsg` call. */
export const BATCH = 64;
/** Bytes per datagram slot; a kernel proc event is 76, anything longer is foreign. */
const SLOT_BYTES = 512;

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

  #closed = false;
  #kernelFilter = false;
  #pending: Uint8Array[] = [];
  #slots = new Uint8Array(BATCH * SLOT_BYTES);
  #slotView = new DataView(this.#slots.buffer);
  #names = new Uint8Array(BATCH * SOCKADDR_NL.size);
  #namesView = new DataView(this.#names.buffer);
  #hdrs = new Uint8Array(BATCH * MMSGHDR.size);
  #hdrView = new DataView(this.#hdrs.buffer);
  #iovs = new Uint8Array(BATCH * IOVEC.size);

  private constructor(fd: number, rcvbuf: [asked: number, granted: number]) {
    this.fd = fd;
    [this.askedRcvbufBytes, this.rcvbufBytes] = rcvbuf;
    const iovView = new DataView(this.#iovs.buffer);
    const slotsAt = Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#slots));
    const namesAt = Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#names));
    const iovsAt = Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#iovs));
    for (let i = 0; i < BATCH; i++) {
      iovView.setBigUint64(
        i * IOVEC.size + IOVEC.base,
        BigInt(slotsAt) + BigInt(i * SLOT_BYTES),
        true,
      );
      iovView.setBigUint64(i * IOVEC.size + IOVEC.len, BigInt(SLOT_BYTES), true);
      const h = i * MMSGHDR.size;
      this.#hdrView.setBigUint64(
        h + MMSGHDR.name,
        BigInt(namesAt) + BigInt(i * SOCKADDR_NL.size),
        true,
      );
      this.#hdrView.setUint32(h + MMSGHDR.namelen, SOCKADDR_NL.size, true);
      this.#hdrView.setBigUint64(h + MMSGHDR.iov, BigInt(iovsAt) + BigInt(i * IOVEC.size), true);
      this.#hdrView.setBigUint64(h + MMSGHDR.iovlen, 1n, true);
    }
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
      if (filterKnown) {
        conn.#kernelFilter = true;
        // The kernel acks this too, but its own filter then drops the ack (what = NONE).
        conn.#request(MCAST_OP.LISTEN, wanted);
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

  /** True while datagrams read during the subscription wait for the first drain. */
  get pending(): boolean {
    return this.#pending.length > 0;
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
   * Reads every datagram available now, without blocking, handing each undecoded to `sink`.
   * Returns the number delivered; 0 means the socket is empty. `onOverrun` runs when the
   * kernel reports that the receive buffer overflowed (events were dropped).
   */
  receive(sink: DatagramSink, onOverrun?: () => void, maxDatagrams = Infinity): number {
    let delivered = 0;
    if (this.#pending.length) {
      for (const p of this.#pending.splice(0)) {
        sink(new DataView(p.buffer), 0, p.length);
        delivered++;
      }
    }
    const c = libc();
    const hv = this.#hdrView;
    while (delivered < maxDatagrams) {
      const n = c.recvmmsg(this.fd, this.#hdrs, BATCH, MSG_DONTWAIT, null);
      if (n < 0) {
        const e = errno();
        if (e === Errno.EAGAIN) break;
        if (e === Errno.EINTR) continue;
        if (e === Errno.ENOBUFS) {
          this.stats.overruns++;
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
        if (this.#namesView.getUint32(i * SOCKADDR_NL.size + SOCKADDR_NL.pid, true) !== 0) {
          this.stats.foreign++;
          continue;
        }
        if (flags & MSG_TRUNC) this.stats.truncated++;
        this.stats.datagrams++;
        delivered++;
        sink(this.#slotView, i * SLOT_BYTES, Math.min(len, SLOT_BYTES));
      }
      // No early exit on a short batch: the sink may have read /proc meanwhile, and what
      // the process did during that read must be in this drain. Only EAGAIN ends it.
    }
    return delivered;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Unsubscribes and closes the socket (after any poll on it has ended). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#request(MCAST_OP.IGNORE);
    } catch { /* the socket is going away anyway */ }
    libc().close(this.fd);
  }
}
