/**
 * The network source (`--net`): assembles the programs of `lib/source/bpf_net/program.ts`
 * for the running kernel's struct offsets, loads them, attaches them to the `sys_exit` and
 * `inet_sock_set_state` raw tracepoints and maps their ring buffer. A loop source: the ring buffer's descriptor wakes
 * the loop when a record is written. `lib/source/bpf_net/stage.ts` turns records into lines.
 *
 * As with the exec-facts source, everything is a descriptor of proctree's: when proctree
 * ends, however it ends, the kernel detaches the program and frees the maps.
 *
 * @module
 */

import { SourceUnavailable } from "../../lib/pipeline/unavailable.ts";
import {
  NET_SYSCALLS,
  netOffsetsFrom,
  netProgram,
  outcomeProgram,
} from "../../lib/source/bpf_net/program.ts";
import type { BatchSink, Source } from "../../lib/pipeline/loop.ts";
import {
  Attached,
  BpfUnavailable,
  kernelOffsets,
  loadProgram,
  MapCounter,
  openAll,
  openRawTracepoint,
  PROG_TYPE_RAW_TRACEPOINT,
  RingBuffer,
  VMLINUX_BTF_PATH,
} from "../bpf.ts";

/** The tracepoint: every system call's return. */
export const NET_TRACEPOINT = "sys_exit";

/** The tracepoint of TCP state changes: how a connect in progress ended. */
export const OUTCOME_TRACEPOINT = "inet_sock_set_state";

/** Ring buffer size: about 36 000 records of 232 bytes (kernel memory, allocated at start). */
export const NET_RINGBUF_BYTES = 8 << 20;

/** `--net` cannot run here; `message` says why in a few words. */
export class NetUnavailable extends SourceUnavailable {
  /** `message`: why, in a few words. */
  constructor(message: string) {
    super("--net", "UNAVAILABLE", message);
  }
}

/** The loaded and attached program, its ring buffer, and what it hands on. */
export class BpfNetSource implements Source {
  readonly name = "net";
  readonly pending = false;
  readonly #a: Attached;
  readonly #take: (record: Uint8Array) => void;

  private constructor(a: Attached, take: (record: Uint8Array) => void) {
    this.#a = a;
    this.#take = take;
  }

  /** The ring buffer's descriptor: readable when records wait. */
  get fd(): number {
    return this.#a.ringFd;
  }

  /**
   * Loads and attaches; each record goes to `take` (a view valid during the call). Throws
   * {@linkcode NetUnavailable} with the reason when it cannot.
   */
  static open(take: (record: Uint8Array) => void, btfPath = VMLINUX_BTF_PATH): BpfNetSource {
    try {
      return BpfNetSource.#open(take, btfPath);
    } catch (e) {
      if (e instanceof BpfUnavailable) throw new NetUnavailable(e.message);
      throw e;
    }
  }

  static #open(take: (record: Uint8Array) => void, btfPath: string): BpfNetSource {
    const syscalls = NET_SYSCALLS[Deno.build.arch];
    if (!syscalls) throw new BpfUnavailable(`not written for ${Deno.build.arch} yet`);
    const offsets = kernelOffsets(btfPath, netOffsetsFrom);
    return openAll((fds, rings) => {
      const drops = new MapCounter("pt_net_drops");
      fds.push(drops.fd);
      const ring = new RingBuffer(NET_RINGBUF_BYTES, "pt_net_ring");
      rings.push(ring);
      const maps = { ringFd: ring.fd, dropsFd: drops.fd };
      const calls = netProgram(offsets, { syscalls, selfTgid: Deno.pid, ...maps });
      const prog = loadProgram(PROG_TYPE_RAW_TRACEPOINT, calls, "proctree_net");
      fds.push(prog);
      fds.push(openRawTracepoint(NET_TRACEPOINT, prog));
      const outcome = outcomeProgram(offsets, maps);
      const outcomeProg = loadProgram(PROG_TYPE_RAW_TRACEPOINT, outcome, "proctree_tcp");
      fds.push(outcomeProg);
      fds.push(openRawTracepoint(OUTCOME_TRACEPOINT, outcomeProg));
      return new BpfNetSource(new Attached(fds, ring, drops), take);
    });
  }

  drain(_sink: BatchSink, _max: number): number {
    return this.#a.drain(this.#take);
  }

  /** Records the ring buffer could not take, since the programs were loaded. */
  drops(): number {
    return this.#a.drops();
  }

  /** Detaches the programs and frees the maps. */
  close(): void {
    this.#a.close();
  }
}
