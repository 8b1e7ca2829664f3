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

import {
  cgroupMoveProgram,
  type CgroupOffsets,
  execProgram,
  offsetsFrom,
  SLOT_BYTES,
} from "../../lib/source/bpf_exec/program.ts";
import type { BpfRecords, CgroupBaseline } from "../../lib/source/bpf_exec/stage.ts";
import {
  Attached,
  BpfUnavailable,
  createMap,
  kernelOffsets,
  loadProgram,
  MapCounter,
  MapType,
  openAll,
  openRawTracepoint,
  parseCpuList,
  PROG_TYPE_RAW_TRACEPOINT,
  RingBuffer,
  VMLINUX_BTF_PATH,
} from "../bpf.ts";
import { readFileBytes } from "../procfs.ts";
import { Clock, clockNs, libc, LibcError } from "../libc.ts";

export { BpfUnavailable, VMLINUX_BTF_PATH };

/** The tracepoint: inside `execve`, the new image installed, before the connector's event. */
export const EXEC_TRACEPOINT = "sched_process_exec";

/**
 * Ring buffer size: allocated whole at start (kernel memory), about 25 000 records of
 * ordinary length (600 bytes of fixed part, then argv).
 */
export const RINGBUF_BYTES = 16 << 20;

/**
 * Where a task changes cgroup or a cgroup its path (`cgroup_attach_task`: moved, by a write
 * to `cgroup.procs` or `tasks`; `cgroup_transfer_tasks`: v1's moves of a whole cgroup;
 * `cgroup_rename`: v1 renames): each run counts one move. Forks into another cgroup are
 * counted on {@linkcode FORK_TRACEPOINT}.
 */
export const CGROUP_MOVE_TRACEPOINTS = [
  "cgroup_attach_task",
  "cgroup_transfer_tasks",
  "cgroup_rename",
] as const;

/** Where a child is created: counted when its cgroups are not its parent's. */
export const FORK_TRACEPOINT = "sched_process_fork";

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

  readonly #moves: MapCounter;
  /** When the cgroup moves began to be counted; null when they cannot be. */
  readonly cgroupBaseline: CgroupBaseline | null;

  private constructor(
    a: Attached,
    progFd: number,
    moves: MapCounter,
    baseline: CgroupBaseline | null,
  ) {
    this.#a = a;
    this.progFd = progFd;
    this.#moves = moves;
    this.cgroupBaseline = baseline;
  }

  /** Loads and attaches; throws {@linkcode BpfUnavailable} with the reason when it cannot. */
  static open(opts: BpfExecOptions = {}): BpfExecSource {
    const offsets = kernelOffsets(opts.btfPath ?? VMLINUX_BTF_PATH, offsetsFrom);
    return openAll((fds, rings) => {
      const scratch = createMap(MapType.ARRAY, 4, SLOT_BYTES, cpuCount(), "pt_exec_slot");
      fds.push(scratch);
      const drops = new MapCounter("pt_exec_drops");
      fds.push(drops.fd);
      const moves = new MapCounter("pt_cg_moves");
      fds.push(moves.fd);
      const ring = new RingBuffer(RINGBUF_BYTES, "pt_exec_ring");
      rings.push(ring);
      const insns = execProgram(offsets, {
        scratchFd: scratch,
        ringFd: ring.fd,
        dropsFd: drops.fd,
        movesFd: moves.fd,
      });
      const prog = loadProgram(PROG_TYPE_RAW_TRACEPOINT, insns, "proctree_exec");
      fds.push(prog);
      fds.push(openRawTracepoint(EXEC_TRACEPOINT, prog));
      const baseline = offsets.cgroups ? countMoves(fds, offsets.cgroups, moves) : null;
      return new BpfExecSource(new Attached(fds, ring, drops), prog, moves, baseline);
    });
  }

  /** Cgroup moves counted since the source was loaded. */
  cgroupMoves(): number {
    return this.#moves.read();
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

/**
 * Attaches the counters of cgroup moves (pushing their descriptors to `fds`) and reads the
 * count they start from; null, with nothing left attached, when a tracepoint is missing or
 * a program refused: then no exec is said to keep its creator's cgroups.
 */
function countMoves(fds: number[], off: CgroupOffsets, moves: MapCounter): CgroupBaseline | null {
  const mine: number[] = [];
  try {
    const any = loadProgram(
      PROG_TYPE_RAW_TRACEPOINT,
      cgroupMoveProgram(moves.fd, null),
      "pt_cg_move",
    );
    mine.push(any);
    for (const tp of CGROUP_MOVE_TRACEPOINTS) mine.push(openRawTracepoint(tp, any));
    const fork = loadProgram(
      PROG_TYPE_RAW_TRACEPOINT,
      cgroupMoveProgram(moves.fd, off),
      "pt_cg_fork",
    );
    mine.push(fork);
    mine.push(openRawTracepoint(FORK_TRACEPOINT, fork));
  } catch (e) {
    if (!(e instanceof LibcError)) throw e; // a refusal, the verifier's included
    for (const fd of mine.reverse()) libc().close(fd);
    return null;
  }
  fds.push(...mine);
  // Taken after the counters are attached and before the tree is read: a move before this
  // is in what the tree reads, one after it is counted.
  return { moves: moves.read(), ns: clockNs(Clock.MONOTONIC) };
}
