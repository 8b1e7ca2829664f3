/**
 * The BPF program of the network source, and the layout of the record it writes.
 *
 * It runs on the `sys_exit` raw tracepoint (every system call's return, on every CPU) and
 * keeps only `connect`, `accept`, `accept4` and `bind` of processes other than proctree.
 * At that moment the call's result is known and the socket is in its final state, so the
 * record holds both what was asked (the address as the caller passed it, read from its
 * memory) and what the kernel did (the return value, and the socket's own addresses and
 * ports, read through the caller's descriptor table). `lib/source/bpf_net/record.ts`
 * decides which to print: the socket's where it has them, the caller's where it has not
 * (a connect that failed leaves no address on the socket).
 *
 * The raw tracepoint needs no tracefs. Its price is a test and a return on every system
 * call of the host while proctree runs (measured in BENCHMARKS.md).
 *
 * @module
 */

import {
  Alu,
  Asm,
  countOne,
  Helper,
  Jmp,
  readKernel as readInto,
  type Reg,
} from "../../bpf/insn.ts";
import { type Btf, memberOffsets, type MemberTable, type OffsetsOf } from "../../bpf/btf.ts";

/** `probe_read_kernel` into the stack frame: `r10 + dstOff`. */
function readKernel(a: Asm, dstOff: number, bytes: number, src: Reg, srcOff: number): void {
  readInto(a, 10, dstOff, bytes, src, srcOff);
}
import type { NetSyscalls } from "./record.ts";

/** Bytes of the caller's socket address a record carries (a `sockaddr_un` is 110). */
export const USER_ADDR_BYTES = 128;

/** The record's fields: byte offsets, little-endian (one table, shared with the decoder). */
export const NetRec = {
  /** u64 CLOCK_MONOTONIC ns at the call's return. */
  ktimeNs: 0,
  /** u32 process and thread. */
  tgid: 8,
  tid: 12,
  /** u32 system call number. */
  nr: 16,
  /** i32 result of reading the caller's address (0: read; -1: not tried). */
  userRead: 20,
  /** i64 the call's return value (a new descriptor for accept, else 0 or -errno). */
  ret: 24,
  /** u32 the address length: as passed (connect, bind) or as returned (accept). */
  userLen: 32,
  /** u32 1 when the socket fields below were read. */
  sockRead: 36,
  /** u16 `sk_family`, `sk_type`, `sk_protocol`. */
  family: 40,
  type: 42,
  protocol: 44,
  /** u16 local port, host order (`skc_num`). */
  localPort: 46,
  /** u16 peer port, network order (`skc_dport`). */
  peerPort: 48,
  /** u32 IPv4 addresses, network order. */
  localV4: 52,
  peerV4: 56,
  /** u64 `task->start_boottime` of the caller (ns): who it was, by identity. */
  startBoottimeNs: 64,
  /** 16 bytes each: IPv6 addresses. */
  localV6: 72,
  peerV6: 88,
  /** {@linkcode USER_ADDR_BYTES}: the caller's `sockaddr` (accept: the peer it was given). */
  user: 104,
  /** u64 the socket (`struct sock *`): pairs a connect in progress with its outcome. */
  sk: 232,
  /** u32 the socket's TCP state: at the call's return, or the state an outcome moved to. */
  state: 240,
  /** u32 `sk_err`: the error a connect ended with (0: none). */
  skErr: 244,
  /** The record's length. */
  size: 248,
} as const;

/** `nr` of an outcome record: a TCP socket left `SYN_SENT` (written by the second program). */
export const OUTCOME_NR = 0xffffffff;

/** TCP states (`include/net/tcp_states.h`). */
export const TCP_STATE = { ESTABLISHED: 1, SYN_SENT: 2, CLOSE: 7 } as const;

/** The system calls the program keeps, by number, for the architectures it knows. */
export const NET_SYSCALLS: Readonly<Record<string, NetSyscalls>> = {
  x86_64: { connect: 42, accept: 43, accept4: 288, bind: 49 },
};

/** The kernel struct members the program reads: name, and the size it reads them as. */
export const NET_MEMBERS = {
  regsOrigAx: ["pt_regs", "orig_ax", 8],
  regsDi: ["pt_regs", "di", 8],
  regsSi: ["pt_regs", "si", 8],
  regsDx: ["pt_regs", "dx", 8],
  taskFiles: ["task_struct", "files", 8],
  taskStartBoottime: ["task_struct", "start_boottime", 8],
  filesFdt: ["files_struct", "fdt", 8],
  fdtMaxFds: ["fdtable", "max_fds", 4],
  fdtFd: ["fdtable", "fd", 8],
  fileInode: ["file", "f_inode", 8],
  filePrivate: ["file", "private_data", 8],
  inodeMode: ["inode", "i_mode", 2],
  socketSk: ["socket", "sk", 8],
  skcFamily: ["sock_common", "skc_family", 2],
  skcNum: ["sock_common", "skc_num", 2],
  skcDport: ["sock_common", "skc_dport", 2],
  skcRcvSaddr: ["sock_common", "skc_rcv_saddr", 4],
  skcDaddr: ["sock_common", "skc_daddr", 4],
  skcV6RcvSaddr: ["sock_common", "skc_v6_rcv_saddr", 16],
  skcV6Daddr: ["sock_common", "skc_v6_daddr", 16],
  skcState: ["sock_common", "skc_state", 1],
  skType: ["sock", "sk_type", 2],
  skProtocol: ["sock", "sk_protocol", 2],
  skErr: ["sock", "sk_err", 4],
} as const satisfies MemberTable;

/** Byte offsets of {@linkcode NET_MEMBERS} in the running kernel. */
export type NetOffsets = OffsetsOf<typeof NET_MEMBERS>;

/** The offsets of {@linkcode NET_MEMBERS} from `btf`, or what is missing, in words. */
export function netOffsetsFrom(btf: Btf): NetOffsets | string {
  return memberOffsets(btf, NET_MEMBERS);
}

/** What the program is built for. */
export interface NetProgramParams {
  /** The system call numbers of this architecture. */
  syscalls: NetSyscalls;
  /** proctree's own process id: its calls are not recorded. */
  selfTgid: number;
  /** The ring buffer's map fd. */
  ringFd: number;
  /** Array, one u64: records the ring buffer could not take. */
  dropsFd: number;
}

/** Stack slots (below r10): the record, then scratch. */
const REC = -NetRec.size;
const TMP = REC - 8;
const ARG_DX = TMP - 8;
const ARG_SI = ARG_DX - 8;
const ARG_DI = ARG_SI - 8;
const FD = ARG_DI - 8;
const KEY = FD - 8;

/** `r<dst> = *(u64 *)(src + srcOff)` read from kernel memory; to `label` when null. */
function follow(a: Asm, dst: Reg, src: Reg, srcOff: number, label: string) {
  readKernel(a, TMP, 8, src, srcOff);
  a.load(8, dst, 10, TMP).jumpImm(Jmp.JEQ, dst, 0, label);
}

/** Reads the socket at r9 into the record: its family, protocol, addresses, ports, state. */
function readSock(a: Asm, off: NetOffsets): void {
  const fields: [number, number, number][] = [
    [NetRec.family, 2, off.skcFamily],
    [NetRec.type, 2, off.skType],
    [NetRec.protocol, 2, off.skProtocol],
    [NetRec.localPort, 2, off.skcNum],
    [NetRec.peerPort, 2, off.skcDport],
    [NetRec.localV4, 4, off.skcRcvSaddr],
    [NetRec.peerV4, 4, off.skcDaddr],
    [NetRec.localV6, 16, off.skcV6RcvSaddr],
    [NetRec.peerV6, 16, off.skcV6Daddr],
    [NetRec.state, 1, off.skcState],
    [NetRec.skErr, 4, off.skErr],
  ];
  for (const [at, bytes, member] of fields) readKernel(a, REC + at, bytes, 9, member);
  a.store(8, 10, REC + NetRec.sk, 9).storeImm(4, 10, REC + NetRec.sockRead, 1);
}

/** Zeroes the record on the stack. */
function zeroRecord(a: Asm): void {
  for (let o = 0; o < NetRec.size; o += 8) a.storeImm(8, 10, REC + o, 0);
}

/** Writes the record to the ring buffer, or counts it in the drops map. */
function send(a: Asm, ringFd: number, dropsFd: number): void {
  a.loadMap(1, ringFd).mov(2, 10).aluImm(Alu.ADD, 2, REC);
  a.movImm(3, NetRec.size).movImm(4, 0).call(Helper.ringbuf_output);
  a.jumpImm(Jmp.JEQ, 0, 0, "out");
  countOne(a, dropsFd, KEY, "out");
  a.label("out").movImm(0, 0).exit();
}

/**
 * The outcome program, on the `inet_sock_set_state` raw tracepoint (`sk`, old state, new
 * state): a TCP socket leaving `SYN_SENT` for `ESTABLISHED` or `CLOSE` — how a connect that
 * returned `EINPROGRESS` ended. It runs wherever the handshake ends (often a softirq), so
 * the record names the socket, not a process: the stage pairs it with its connect.
 */
export function outcomeProgram(
  off: NetOffsets,
  p: Pick<NetProgramParams, "ringFd" | "dropsFd">,
): Uint8Array {
  const a = new Asm();
  a.mov(6, 1);
  a.load(8, 2, 6, 8).jumpImm(Jmp.JNE, 2, TCP_STATE.SYN_SENT, "out");
  a.load(8, 3, 6, 16);
  a.jumpImm(Jmp.JEQ, 3, TCP_STATE.ESTABLISHED, "kept").jumpImm(Jmp.JEQ, 3, TCP_STATE.CLOSE, "kept");
  a.jump("out");
  a.label("kept");
  zeroRecord(a);
  a.storeImm(4, 10, REC + NetRec.nr, -1); // OUTCOME_NR
  a.call(Helper.ktime_get_ns).store(8, 10, REC + NetRec.ktimeNs, 0);
  a.load(8, 9, 6, 0); // args[0]: the socket
  readSock(a, off);
  // The state it moves to (the socket still holds the old one).
  a.load(8, 3, 6, 16).store(4, 10, REC + NetRec.state, 3);
  send(a, p.ringFd, p.dropsFd);
  return a.bytes();
}

/**
 * The program. Registers kept across calls: r6 the tracepoint's arguments (`regs`, `ret`),
 * r7 pid and tid, r8 the saved registers, r9 the pointer being followed.
 */
export function netProgram(off: NetOffsets, p: NetProgramParams): Uint8Array {
  const a = new Asm();
  const n = p.syscalls;
  a.mov(6, 1);
  a.call(Helper.get_current_pid_tgid).mov(7, 0).aluImm(Alu.RSH, 0, 32);
  a.jumpImm(Jmp.JEQ, 0, p.selfTgid, "out");
  a.load(8, 8, 6, 0); // args[0]: the caller's saved registers
  a.storeImm(8, 10, TMP, 0);
  readKernel(a, TMP, 8, 8, off.regsOrigAx);
  a.load(8, 1, 10, TMP);
  for (const nr of [n.connect, n.accept, n.accept4, n.bind]) a.jumpImm(Jmp.JEQ, 1, nr, "kept");
  a.jump("out");

  a.label("kept");
  zeroRecord(a);
  a.store(4, 10, REC + NetRec.nr, 1);
  a.store(4, 10, REC + NetRec.tid, 7);
  a.aluImm(Alu.RSH, 7, 32).store(4, 10, REC + NetRec.tgid, 7);
  a.call(Helper.ktime_get_ns).store(8, 10, REC + NetRec.ktimeNs, 0);
  a.load(8, 1, 6, 8).store(8, 10, REC + NetRec.ret, 1); // args[1]: the return value
  a.storeImm(4, 10, REC + NetRec.userRead, -1);
  for (const [slot, member] of [[ARG_DX, off.regsDx], [ARG_SI, off.regsSi], [ARG_DI, off.regsDi]]) {
    a.storeImm(8, 10, slot, 0);
    readKernel(a, slot, 8, 8, member);
  }
  a.load(8, 1, 10, ARG_DI).store(8, 10, FD, 1);
  a.load(4, 1, 10, REC + NetRec.nr);
  a.jumpImm(Jmp.JEQ, 1, n.accept, "accept").jumpImm(Jmp.JEQ, 1, n.accept4, "accept");
  a.load(8, 2, 10, ARG_DX).store(4, 10, REC + NetRec.userLen, 2); // connect, bind: addrlen
  a.jump("user");

  // accept: the descriptor is the result; the peer's address was written to the caller.
  a.label("accept").load(8, 1, 6, 8).store(8, 10, FD, 1);
  a.load(8, 3, 10, ARG_DX).jumpImm(Jmp.JEQ, 3, 0, "sock");
  a.mov(1, 10).aluImm(Alu.ADD, 1, TMP).movImm(2, 4).call(Helper.probe_read_user);
  a.jumpImm(Jmp.JNE, 0, 0, "sock");
  a.load(4, 2, 10, TMP).store(4, 10, REC + NetRec.userLen, 2);

  a.label("user").load(4, 2, 10, REC + NetRec.userLen);
  a.jumpImm(Jmp.JLE, 2, USER_ADDR_BYTES, "fits").movImm(2, USER_ADDR_BYTES).label("fits");
  a.load(8, 3, 10, ARG_SI).jumpImm(Jmp.JEQ, 3, 0, "sock");
  a.mov(1, 10).aluImm(Alu.ADD, 1, REC + NetRec.user).call(Helper.probe_read_user);
  a.store(4, 10, REC + NetRec.userRead, 0);

  // The socket behind the descriptor: task->files->fdt->fd[fd]->private_data->sk, only
  // if the file is a socket (its inode says so) and the descriptor is within the table.
  a.label("sock").load(8, 1, 10, FD).jumpImm(Jmp.JSLT, 1, 0, "send");
  a.call(Helper.get_current_task).mov(9, 0);
  readKernel(a, REC + NetRec.startBoottimeNs, 8, 9, off.taskStartBoottime);
  follow(a, 9, 9, off.taskFiles, "send");
  follow(a, 9, 9, off.filesFdt, "send");
  a.storeImm(8, 10, TMP, 0);
  readKernel(a, TMP, 4, 9, off.fdtMaxFds);
  a.load(4, 1, 10, TMP).load(8, 2, 10, FD).jumpReg(Jmp.JGE, 2, 1, "send");
  follow(a, 9, 9, off.fdtFd, "send");
  a.load(8, 2, 10, FD).aluImm(Alu.LSH, 2, 3).alu(Alu.ADD, 9, 2);
  follow(a, 9, 9, 0, "send"); // the file
  follow(a, 3, 9, off.fileInode, "send");
  a.storeImm(8, 10, TMP, 0);
  readKernel(a, TMP, 2, 3, off.inodeMode);
  a.load(2, 1, 10, TMP).aluImm(Alu.AND, 1, 0xf000).jumpImm(Jmp.JNE, 1, 0xc000, "send");
  follow(a, 9, 9, off.filePrivate, "send"); // the socket
  follow(a, 9, 9, off.socketSk, "send");
  readSock(a, off);
  a.label("send");
  send(a, p.ringFd, p.dropsFd);
  return a.bytes();
}
