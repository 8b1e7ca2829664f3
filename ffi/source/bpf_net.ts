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

import { Btf, BtfError } from "../../lib/bpf/btf.ts";
import {
  NET_SYSCALLS,
  netOffsetsFrom,
  netProgram,
  outcomeProgram,
} from "../../lib/source/bpf_net/program.ts";
import type { BatchSink, Source } from "../../lib/loop.ts";
import {
  createMap,
  loadProgram,
  lookupU32Key,
  MapType,
  openRawTracepoint,
  PROG_TYPE_RAW_TRACEPOINT,
  RingBuffer,
} from "../bpf.ts";
import { libc, LibcError } from "../libc.ts";
import { readFileBytes } from "../procfs.ts";
import { BpfUnavailable, refusal, VMLINUX_BTF_PATH } from "./bpf_exec.ts";

/** The tracepoint: every system call's return. */
export const NET_TRACEPOINT = "sys_exit";

/** The tracepoint of TCP state changes: how a connect in progress ended. */
export const OUTCOME_TRACEPOINT = "inet_sock_set_state";

/** Ring buffer size: about 36 000 records of 232 bytes (kernel memory, allocated at start). */
export const NET_RINGBUF_BYTES = 8 << 20;

/** `--net` cannot run here; `message` says why in a few words. */
export class NetUnavailable extends Error {
  /** Always `NetUnavailable`. */
  override name = "NetUnavailable";
}

/** The loaded and attached program, its ring buffer, and what it hands on. */
export class BpfNetSource implements Source {
  readonly name = "net";
  readonly pending = false;
  readonly #fds: number[];
  readonly #ring: RingBuffer;
  readonly #dropsFd: number;
  readonly #dropsBuf = new Uint8Array(8);
  readonly #take: (record: Uint8Array) => void;
  #closed = false;

  private constructor(
    fds: number[],
    ring: RingBuffer,
    dropsFd: number,
    take: (record: Uint8Array) => void,
  ) {
    this.#fds = fds;
    this.#ring = ring;
    this.#dropsFd = dropsFd;
    this.#take = take;
  }

  /** The ring buffer's descriptor: readable when records wait. */
  get fd(): number {
    return this.#ring.fd;
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
    const bytes = readFileBytes(btfPath);
    if (!bytes) throw new BpfUnavailable(`no BTF at ${btfPath}`);
    let offsets;
    try {
      offsets = netOffsetsFrom(new Btf(bytes));
    } catch (e) {
      if (e instanceof BtfError) throw new BpfUnavailable(`${btfPath}: ${e.message}`);
      throw e;
    }
    if (typeof offsets === "string") throw new BpfUnavailable(offsets);
    const fds: number[] = [];
    let ring: RingBuffer | null = null;
    try {
      const drops = createMap(MapType.ARRAY, 4, 8, 1, "pt_net_drops");
      fds.push(drops);
      ring = new RingBuffer(NET_RINGBUF_BYTES, "pt_net_ring");
      const insns = netProgram(offsets, {
        syscalls,
        selfTgid: Deno.pid,
        ringFd: ring.fd,
        dropsFd: drops,
      });
      const prog = loadProgram(PROG_TYPE_RAW_TRACEPOINT, insns, "proctree_net");
      fds.push(prog);
      fds.push(openRawTracepoint(NET_TRACEPOINT, prog));
      const maps = { ringFd: ring.fd, dropsFd: drops };
      const outcome = loadProgram(
        PROG_TYPE_RAW_TRACEPOINT,
        outcomeProgram(offsets, maps),
        "proctree_tcp",
      );
      fds.push(outcome);
      fds.push(openRawTracepoint(OUTCOME_TRACEPOINT, outcome));
      return new BpfNetSource(fds, ring, drops, take);
    } catch (e) {
      for (const fd of fds) libc().close(fd);
      ring?.close();
      if (e instanceof LibcError) throw new BpfUnavailable(refusal(e));
      throw e;
    }
  }

  drain(_sink: BatchSink, _max: number): number {
    return this.#closed ? 0 : this.#ring.drain(this.#take);
  }

  /** Records the ring buffer could not take, since the program was loaded. */
  drops(): number {
    if (this.#closed || !lookupU32Key(this.#dropsFd, 0, this.#dropsBuf)) return 0;
    return Number(new DataView(this.#dropsBuf.buffer).getBigUint64(0, true));
  }

  /** Detaches the program and frees the maps. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#fds.toReversed()) libc().close(fd);
    this.#ring.close();
  }
}
