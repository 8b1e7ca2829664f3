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

import { execProgram, offsetsFrom, SLOT_BYTES } from "../../lib/source/bpf_exec/program.ts";
import type { BpfRecords } from "../../lib/source/bpf_exec/stage.ts";
import {
  Attached,
  BpfUnavailable,
  createMap,
  DropCount,
  kernelOffsets,
  loadProgram,
  MapType,
  openAll,
  openRawTracepoint,
  parseCpuList,
  PROG_TYPE_RAW_TRACEPOINT,
  RingBuffer,
  VMLINUX_BTF_PATH,
} from "../bpf.ts";
import { readFileBytes } from "../procfs.ts";

export { BpfUnavailable, VMLINUX_BTF_PATH };

/** The tracepoint: inside `execve`, the new image installed, before the connector's event. */
export const EXEC_TRACEPOINT = "sched_process_exec";

/**
 * Ring buffer size: allocated whole at start (kernel memory), about 25 000 records of
 * ordinary length (600 bytes of fixed part, then argv).
 */
export const RINGBUF_BYTES = 16 << 20;

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

/** The loaded and attached program, and its ring buffer. */
export class BpfExecSource implements BpfRecords {
  readonly #a: Attached;
  /** The loaded program's fd (its id is the kernel's name for it). */
  readonly progFd: number;

  private constructor(a: Attached, progFd: number) {
    this.#a = a;
    this.progFd = progFd;
  }

  /** Loads and attaches; throws {@linkcode BpfUnavailable} with the reason when it cannot. */
  static open(opts: BpfExecOptions = {}): BpfExecSource {
    const offsets = kernelOffsets(opts.btfPath ?? VMLINUX_BTF_PATH, offsetsFrom);
    return openAll((fds, rings) => {
      const scratch = createMap(MapType.ARRAY, 4, SLOT_BYTES, cpuCount(), "pt_exec_slot");
      fds.push(scratch);
      const drops = new DropCount("pt_exec_drops");
      fds.push(drops.fd);
      const ring = new RingBuffer(RINGBUF_BYTES, "pt_exec_ring");
      rings.push(ring);
      const insns = execProgram(offsets, {
        scratchFd: scratch,
        ringFd: ring.fd,
        dropsFd: drops.fd,
      });
      const prog = loadProgram(PROG_TYPE_RAW_TRACEPOINT, insns, "proctree_exec");
      fds.push(prog);
      fds.push(openRawTracepoint(EXEC_TRACEPOINT, prog));
      return new BpfExecSource(new Attached(fds, ring, drops), prog);
    });
  }

  drain(take: (record: Uint8Array) => void): void {
    this.#a.drain(take);
  }

  drops(): number {
    return this.#a.drops();
  }

  /** Detaches the program and frees the maps. */
  close(): void {
    this.#a.close();
  }
}
