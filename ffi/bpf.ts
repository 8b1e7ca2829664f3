/**
 * `bpf(2)` through libc's `syscall`: maps, program load (with the verifier's log on
 * refusal), raw tracepoint attachment, and a BPF ring buffer `mmap`ed into proctree and read
 * per the kernel's protocol (`kernel/bpf/ringbuf.c`).
 *
 * Every object is a file descriptor: closing it (or proctree dying, even by SIGKILL)
 * detaches the program and frees the maps. Nothing is pinned, nothing outlives proctree.
 *
 * @module
 */

import { SourceUnavailable } from "../lib/pipeline/unavailable.ts";
import { Errno, errno, libc, LibcError } from "./libc.ts";
import { cBytes, readFileBytes } from "./procfs.ts";
import { Btf, BtfError } from "../lib/bpf/btf.ts";

/** `SYS_bpf` by architecture. */
const SYS_BPF = Deno.build.arch === "aarch64" ? 280 : 321;

/** `enum bpf_cmd`: the commands used here. */
export const BpfCmd = {
  MAP_CREATE: 0,
  MAP_LOOKUP_ELEM: 1,
  PROG_LOAD: 5,
  PROG_GET_NEXT_ID: 11,
  RAW_TRACEPOINT_OPEN: 17,
} as const;

/** `enum bpf_map_type`: the types used here. */
export const MapType = { ARRAY: 2, RINGBUF: 27 } as const;

/** `BPF_PROG_TYPE_RAW_TRACEPOINT`. */
export const PROG_TYPE_RAW_TRACEPOINT = 17;

/** Size of the `union bpf_attr` prefix passed (zeroed beyond the fields set). */
const ATTR_BYTES = 128;

/** The license the program declares: the kernel gives GPL-only helpers to GPL-compatible ones. */
const LICENSE = "Dual MIT/GPL";

const PAGE_BYTES = 4096;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;

function address(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** `bpf(cmd, attr)` as the kernel answers: the result, or -1 with errno set. */
function sysBpf(cmd: number, attr: Uint8Array): number {
  return Number(libc().syscall(BigInt(SYS_BPF), BigInt(cmd), attr, BigInt(attr.length)));
}

/** `bpf(cmd, attr)`: the result, or throws {@linkcode LibcError} with the errno name. */
export function bpf(cmd: number, attr: Uint8Array, what: string): number {
  const r = sysBpf(cmd, attr);
  if (r < 0) throw new LibcError(what, errno());
  return r;
}

/** Creates a map; returns its fd. */
export function createMap(
  type: number,
  keyBytes: number,
  valueBytes: number,
  maxEntries: number,
  name: string,
): number {
  const attr = new Uint8Array(ATTR_BYTES);
  const v = new DataView(attr.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, keyBytes, true);
  v.setUint32(8, valueBytes, true);
  v.setUint32(12, maxEntries, true);
  attr.set(new TextEncoder().encode(name.slice(0, 15)), 28); // map_name
  return bpf(BpfCmd.MAP_CREATE, attr, `bpf(BPF_MAP_CREATE ${name})`);
}

/** The value of `key` (a u32) in an array map, into `out`; false when absent. */
export function lookupU32Key(mapFd: number, key: number, out: Uint8Array): boolean {
  const keyBuf = new Uint8Array(4);
  new DataView(keyBuf.buffer).setUint32(0, key, true);
  const attr = new Uint8Array(ATTR_BYTES);
  const v = new DataView(attr.buffer);
  v.setUint32(0, mapFd, true);
  v.setBigUint64(8, address(keyBuf), true);
  v.setBigUint64(16, address(out), true);
  return sysBpf(BpfCmd.MAP_LOOKUP_ELEM, attr) === 0;
}

/** The kernel refused a program: the errno, and the verifier's last lines. */
export class VerifierError extends LibcError {
  /** The verifier's log (its last 4 KiB). */
  readonly log: string;
  constructor(errnoValue: number, log: string) {
    super("bpf(BPF_PROG_LOAD)", errnoValue);
    this.log = log;
    const last = log.trim().split("\n").slice(-3).join(" | ");
    if (last) this.message += `: ${last}`;
  }
}

// `sigset_t` as glibc defines it (1024 bits); SIG_BLOCK and SIG_SETMASK from `signal.h`.
const SIGSET_BYTES = 128;
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;

/**
 * Runs `f` with every signal blocked on this thread. The verifier gives up with EAGAIN as
 * soon as a signal is pending for the loading thread (measured: a SIGHUP sent in a loop, or a
 * profiler's SIGPROF, made every load fail); blocked, the signal waits until `f` returns.
 */
function withSignalsBlocked<T>(f: () => T): T {
  const all = new Uint8Array(SIGSET_BYTES).fill(0xff);
  const old = new Uint8Array(SIGSET_BYTES);
  if (libc().pthread_sigmask(SIG_BLOCK, all, old) !== 0) return f();
  try {
    return f();
  } finally {
    libc().pthread_sigmask(SIG_SETMASK, old, null);
  }
}

/** How many times a load the verifier gave up on (EAGAIN) is made. */
const LOAD_TRIES = 3;

/** Loads a program of `type`; returns its fd or throws {@linkcode VerifierError}. */
export function loadProgram(type: number, insns: Uint8Array, name: string): number {
  const log = new Uint8Array(1 << 20);
  const license = cBytes(LICENSE);
  const attr = new Uint8Array(ATTR_BYTES);
  const v = new DataView(attr.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, insns.length / 8, true);
  v.setBigUint64(8, address(insns), true);
  v.setBigUint64(16, address(license), true);
  // Without a log the kernel says only EACCES; level 1 keeps the failing path.
  v.setUint32(24, 1, true);
  v.setUint32(28, log.length, true);
  v.setBigUint64(32, address(log), true);
  attr.set(new TextEncoder().encode(name.slice(0, 15)), 48); // prog_name
  // EAGAIN: the verifier stopped early, as it does on a pending signal; blocking them did not
  // hold every stop off (once in ~20 starts, 112 000 insns into the exec program): again.
  let r = -1, e = 0;
  for (let tries = 0; tries < LOAD_TRIES; tries++) {
    ({ r, e } = withSignalsBlocked(() => {
      const r = sysBpf(BpfCmd.PROG_LOAD, attr);
      return { r, e: r < 0 ? errno() : 0 };
    }));
    if (r >= 0 || e !== Errno.EAGAIN) break;
  }
  if (r >= 0) return r;
  const end = log.indexOf(0);
  const text = new TextDecoder().decode(log.subarray(0, end < 0 ? log.length : end));
  throw new VerifierError(e, text.slice(-4096));
}

/** Attaches `progFd` to raw tracepoint `name`; the attachment lives as long as the fd. */
export function openRawTracepoint(name: string, progFd: number): number {
  const tp = cBytes(name);
  const attr = new Uint8Array(ATTR_BYTES);
  const v = new DataView(attr.buffer);
  v.setBigUint64(0, address(tp), true);
  v.setUint32(8, progFd, true);
  return bpf(BpfCmd.RAW_TRACEPOINT_OPEN, attr, `bpf(BPF_RAW_TRACEPOINT_OPEN ${name})`);
}

/** Ids of every BPF program loaded on the host now. */
export function programIds(): number[] {
  const out: number[] = [];
  const attr = new Uint8Array(ATTR_BYTES);
  const v = new DataView(attr.buffer);
  for (let id = 0;;) {
    v.setUint32(0, id, true);
    if (sysBpf(BpfCmd.PROG_GET_NEXT_ID, attr) < 0) return out; // ENOENT: no more
    id = v.getUint32(4, true); // next_id
    out.push(id);
  }
}

/** Counts of the possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-1`). */
export function parseCpuList(text: string): number {
  let max = -1;
  for (const part of text.trim().split(",")) {
    const hi = Number(part.split("-").pop());
    if (Number.isInteger(hi)) max = Math.max(max, hi);
  }
  return max + 1;
}

/** Record header bits (`BPF_RINGBUF_BUSY_BIT`, `BPF_RINGBUF_DISCARD_BIT`). */
const RB_BUSY = 0x80000000;
const RB_DISCARD = 0x40000000;
const RB_HEADER_BYTES = 8;

/**
 * A BPF ring buffer mapped into proctree: the consumer position page (read-write), then the
 * producer position page and the data, mapped twice in a row by the kernel so a record
 * that wraps reads as one piece.
 */
export class RingBuffer {
  readonly fd: number;
  readonly #dataBytes: number;
  readonly #consumer: BigUint64Array;
  readonly #producer: Deno.UnsafePointerView;
  readonly #data: Uint8Array;
  readonly #view: DataView;
  /** The consumer position, as proctree last published it (only proctree writes it). */
  #cons: number;
  #consumerPtr: Deno.PointerObject;
  #producerPtr: Deno.PointerObject;

  /** Creates a ring buffer of `dataBytes` (a power of two, multiple of the page size). */
  constructor(dataBytes: number, name: string) {
    this.fd = createMap(MapType.RINGBUF, 0, 0, dataBytes, name);
    this.#dataBytes = dataBytes;
    const c = libc();
    const failed = (p: Deno.PointerValue) => !p || Deno.UnsafePointer.value(p) === -1n; // MAP_FAILED
    const cons = c.mmap(null, BigInt(PAGE_BYTES), PROT_READ | PROT_WRITE, MAP_SHARED, this.fd, 0n);
    const e1 = errno();
    const prodBytes = BigInt(PAGE_BYTES + 2 * dataBytes);
    const prod = failed(cons)
      ? null
      : c.mmap(null, prodBytes, PROT_READ, MAP_SHARED, this.fd, BigInt(PAGE_BYTES));
    if (failed(cons) || failed(prod)) {
      const e = failed(cons) ? e1 : errno();
      if (!failed(cons)) c.munmap(cons, BigInt(PAGE_BYTES));
      c.close(this.fd);
      throw new LibcError("mmap(ringbuf)", e);
    }
    this.#consumerPtr = cons!;
    this.#producerPtr = prod!;
    this.#consumer = new BigUint64Array(Deno.UnsafePointerView.getArrayBuffer(cons!, 8));
    this.#producer = new Deno.UnsafePointerView(prod!);
    this.#data = new Uint8Array(
      Deno.UnsafePointerView.getArrayBuffer(prod!, 2 * dataBytes, PAGE_BYTES),
    );
    this.#view = new DataView(this.#data.buffer, this.#data.byteOffset, this.#data.byteLength);
    this.#cons = Number(this.#consumer[0]);
  }

  /**
   * Hands each committed record to `take` (a view valid only during the call), oldest
   * first, and releases them to the producer. Stops at a record still being written. x86
   * and arm64 order: the producer position is read before the records it covers (a load
   * after a load), and the kernel publishes it after writing them.
   */
  drain(take: (record: Uint8Array) => void): number {
    // Called for every datagram the connector gives: no BigInt until there is a record.
    const p = this.#producer;
    const prod = p.getUint32(0) + p.getUint32(4) * 2 ** 32;
    let cons = this.#cons;
    if (cons >= prod) return 0;
    const mask = this.#dataBytes - 1;
    const view = this.#view;
    let n = 0;
    while (cons < prod) {
      const at = cons & mask;
      const len = view.getUint32(at, true);
      if (len & RB_BUSY) break;
      const bytes = len & ~(RB_BUSY | RB_DISCARD);
      if (!(len & RB_DISCARD)) {
        take(this.#data.subarray(at + RB_HEADER_BYTES, at + RB_HEADER_BYTES + bytes));
        n++;
      }
      cons += (bytes + RB_HEADER_BYTES + 7) & ~7;
    }
    if (cons !== this.#cons) this.#consumer[0] = BigInt(this.#cons = cons);
    return n;
  }

  /** Unmaps and closes. */
  close(): void {
    const c = libc();
    c.munmap(this.#consumerPtr, BigInt(PAGE_BYTES));
    c.munmap(this.#producerPtr, BigInt(PAGE_BYTES + 2 * this.#dataBytes));
    c.close(this.fd);
  }
}

/** Where the kernel describes its types. */
export const VMLINUX_BTF_PATH = "/sys/kernel/btf/vmlinux";

/** A BPF source cannot run here; `message` says why in a few words. */
export class BpfUnavailable extends SourceUnavailable {
  /** `message`: why, in a few words. */
  constructor(message: string) {
    super("--exec-facts bpf", "UNAVAILABLE", message);
  }
}

/** Why a `bpf(2)` refusal means "not here", in words. */
export function refusal(e: LibcError): string {
  if (e.code === "EPERM" || e.code === "EACCES") {
    return `${e.message} (needs root, or CAP_BPF and CAP_PERFMON)`;
  }
  return e.message;
}

/**
 * A program's struct offsets in the running kernel: `offsetsFrom` over the BTF at `path`.
 * Throws {@linkcode BpfUnavailable} when there is none, it is malformed, or a member the
 * program reads is missing.
 */
export function kernelOffsets<T>(path: string, offsetsFrom: (btf: Btf) => T | string): T {
  const bytes = readFileBytes(path);
  if (!bytes) throw new BpfUnavailable(`no BTF at ${path}`);
  let offsets;
  try {
    offsets = offsetsFrom(new Btf(bytes));
  } catch (e) {
    if (e instanceof BtfError) throw new BpfUnavailable(`${path}: ${e.message}`);
    throw e;
  }
  if (typeof offsets === "string") throw new BpfUnavailable(offsets);
  return offsets;
}

/**
 * Runs `build`, which pushes each descriptor and ring buffer it opens; if it fails, closes
 * them all, and a refusal of `bpf(2)` becomes {@linkcode BpfUnavailable}.
 */
export function openAll<T>(build: (fds: number[], rings: RingBuffer[]) => T): T {
  const fds: number[] = [];
  const rings: RingBuffer[] = [];
  try {
    return build(fds, rings);
  } catch (e) {
    for (const fd of fds) libc().close(fd);
    for (const r of rings) r.close();
    if (e instanceof LibcError) throw new BpfUnavailable(refusal(e));
    throw e;
  }
}

/**
 * One u64 count in an array map that programs add to: records a ring buffer could not take,
 * or the exec source's cgroup moves.
 */
export class MapCounter {
  readonly fd: number;
  readonly #buf = new Uint8Array(8);

  /** Creates the map, named `name`. */
  constructor(name: string) {
    this.fd = createMap(MapType.ARRAY, 4, 8, 1, name);
  }

  /** The count now (0 if the map cannot be read). */
  read(): number {
    if (!lookupU32Key(this.fd, 0, this.#buf)) return 0;
    return Number(new DataView(this.#buf.buffer).getBigUint64(0, true));
  }
}

/**
 * What a BPF source holds: its maps, programs and attachments (descriptors, in the order
 * opened), its ring buffer and its drop count. Closed together, attachments first (the
 * reverse order), so no record is written into a ring being unmapped.
 */
export class Attached {
  readonly #fds: number[];
  readonly #ring: RingBuffer;
  readonly #drops: MapCounter;
  #closed = false;

  /** Holds `fds`, `ring` and `drops` (from {@linkcode openAll}). */
  constructor(fds: number[], ring: RingBuffer, drops: MapCounter) {
    this.#fds = fds;
    this.#ring = ring;
    this.#drops = drops;
  }

  /** The ring buffer's descriptor. */
  get ringFd(): number {
    return this.#ring.fd;
  }

  /** Hands each committed record to `take` (see {@linkcode RingBuffer.drain}); 0 once closed. */
  drain(take: (record: Uint8Array) => void): number {
    return this.#closed ? 0 : this.#ring.drain(take);
  }

  /** Records the ring buffer could not take, since the programs were loaded. */
  drops(): number {
    return this.#closed ? 0 : this.#drops.read();
  }

  /** Detaches the programs and frees the maps. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#fds.toReversed()) libc().close(fd);
    this.#ring.close();
  }
}
