/**
 * The BPF exec-facts source: reads the running kernel's BTF, assembles the program for its
 * struct offsets (`lib/source/bpf_exec/program.ts`), loads it, attaches it to the
 * `sched_process_exec` raw tracepoint and maps its ring buffer. Its records are paired with
 * exec events by `lib/source/bpf_exec/stage.ts`.
 *
 * Everything is a file descriptor of proctree's: when proctree ends, however it ends, the
 * kernel detaches the program and frees the maps.
 *
 * @module
 */

import { Btf, BtfError } from "../../lib/bpf/btf.ts";
import { execProgram, offsetsFrom, SLOT_BYTES } from "../../lib/source/bpf_exec/program.ts";
import type { BpfRecords } from "../../lib/source/bpf_exec/stage.ts";
import {
  createMap,
  loadProgram,
  lookupU32Key,
  MapType,
  openRawTracepoint,
  parseCpuList,
  PROG_TYPE_RAW_TRACEPOINT,
  RingBuffer,
} from "../bpf.ts";
import { libc, LibcError } from "../libc.ts";
import { readFileBytes } from "../procfs.ts";

/** Where the kernel describes its types. */
export const VMLINUX_BTF_PATH = "/sys/kernel/btf/vmlinux";

/** The tracepoint: inside `execve`, the new image installed, before the connector's event. */
export const EXEC_TRACEPOINT = "sched_process_exec";

/**
 * Ring buffer size: allocated whole at start (kernel memory), about 25 000 records of
 * ordinary length (600 bytes of fixed part, then argv).
 */
export const RINGBUF_BYTES = 16 << 20;

/** The BPF source cannot run here; `message` says why in a few words. */
export class BpfUnavailable extends Error {
  /** Always `BpfUnavailable`. */
  override name = "BpfUnavailable";
}

/** Options of {@linkcode BpfExecSource.open}. */
export interface BpfExecOptions {
  /** Where to read BTF (default {@linkcode VMLINUX_BTF_PATH}; tests point it elsewhere). */
  btfPath?: string;
}

function cpuCount(): number {
  const text = readFileBytes("/sys/devices/system/cpu/possible");
  const n = text ? parseCpuList(new TextDecoder().decode(text)) : 0;
  return n > 0 ? n : navigator.hardwareConcurrency;
}

/** Why a `bpf(2)` refusal means "not here", in words. */
export function refusal(e: LibcError): string {
  if (e.code === "EPERM" || e.code === "EACCES") {
    return `${e.message} (needs root, or CAP_BPF and CAP_PERFMON)`;
  }
  return e.message;
}

/** The loaded and attached program, and its ring buffer. */
export class BpfExecSource implements BpfRecords {
  readonly #fds: number[];
  readonly #ring: RingBuffer;
  readonly #dropsFd: number;
  readonly #dropsBuf = new Uint8Array(8);
  /** The loaded program's fd (its id is the kernel's name for it). */
  readonly progFd: number;
  #closed = false;

  private constructor(fds: number[], ring: RingBuffer, dropsFd: number, progFd: number) {
    this.#fds = fds;
    this.#ring = ring;
    this.#dropsFd = dropsFd;
    this.progFd = progFd;
  }

  /** Loads and attaches; throws {@linkcode BpfUnavailable} with the reason when it cannot. */
  static open(opts: BpfExecOptions = {}): BpfExecSource {
    const path = opts.btfPath ?? VMLINUX_BTF_PATH;
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
    const fds: number[] = [];
    let ring: RingBuffer | null = null;
    try {
      const scratch = createMap(MapType.ARRAY, 4, SLOT_BYTES, cpuCount(), "pt_exec_slot");
      fds.push(scratch);
      const drops = createMap(MapType.ARRAY, 4, 8, 1, "pt_exec_drops");
      fds.push(drops);
      ring = new RingBuffer(RINGBUF_BYTES, "pt_exec_ring");
      const insns = execProgram(offsets, { scratchFd: scratch, ringFd: ring.fd, dropsFd: drops });
      const prog = loadProgram(PROG_TYPE_RAW_TRACEPOINT, insns, "proctree_exec");
      fds.push(prog);
      fds.push(openRawTracepoint(EXEC_TRACEPOINT, prog));
      return new BpfExecSource(fds, ring, drops, prog);
    } catch (e) {
      for (const fd of fds) libc().close(fd);
      ring?.close();
      if (e instanceof LibcError) throw new BpfUnavailable(refusal(e));
      throw e;
    }
  }

  drain(take: (record: Uint8Array) => void): void {
    if (!this.#closed) this.#ring.drain(take);
  }

  drops(): number {
    if (this.#closed || !lookupU32Key(this.#dropsFd, 0, this.#dropsBuf)) return 0;
    return Number(new DataView(this.#dropsBuf.buffer).getBigUint64(0, true));
  }

  /** Detaches the program and frees the maps. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // The attachment first, so no record is written into a ring being unmapped.
    for (const fd of this.#fds.toReversed()) libc().close(fd);
    this.#ring.close();
  }
}
