/**
 * A BPF instruction encoder and a small assembler with labels, so a program is written in
 * TypeScript and loaded as bytes: no clang, no libbpf, no object file.
 *
 * Each instruction is 8 bytes (`struct bpf_insn`, `include/uapi/linux/bpf.h`): opcode, the
 * destination register in the low nibble and the source in the high one, a signed 16-bit
 * offset and a signed 32-bit immediate, little-endian. A 64-bit immediate load takes two.
 *
 * @module
 */

/** Instruction classes (the opcode's low three bits). */
export const Class = {
  LD: 0x00,
  LDX: 0x01,
  ST: 0x02,
  STX: 0x03,
  ALU: 0x04,
  JMP: 0x05,
  ALU64: 0x07,
} as const;

/** Access sizes of loads and stores. */
export const Size = { W: 0x00, H: 0x08, B: 0x10, DW: 0x18 } as const;

/** Sizes by byte count. */
export type Bytes = 1 | 2 | 4 | 8;
const SIZE_OF: Record<Bytes, number> = { 1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW };

/** Load/store modes. */
export const Mode = { IMM: 0x00, MEM: 0x60, ATOMIC: 0xc0 } as const;

/** ALU operations. */
export const Alu = {
  ADD: 0x00,
  SUB: 0x10,
  MUL: 0x20,
  OR: 0x40,
  AND: 0x50,
  LSH: 0x60,
  RSH: 0x70,
  MOV: 0xb0,
} as const;

/** Jump operations (unsigned comparisons unless the name says signed). */
export const Jmp = {
  JA: 0x00,
  JEQ: 0x10,
  JGT: 0x20,
  JGE: 0x30,
  JNE: 0x50,
  JSGT: 0x60,
  CALL: 0x80,
  EXIT: 0x90,
  JLT: 0xa0,
  JLE: 0xb0,
  JSLT: 0xc0,
  JSLE: 0xd0,
} as const;

/** Operand source: the immediate (K) or the source register (X). */
const SRC_K = 0x00;
const SRC_X = 0x08;

/** `BPF_PSEUDO_MAP_FD`: the 64-bit immediate is a map's file descriptor. */
export const PSEUDO_MAP_FD = 1;

/** Registers: r0 result, r1–r5 arguments (clobbered by calls), r6–r9 kept, r10 frame. */
export type Reg = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;

/** Helper function ids (`enum bpf_func_id`, `__BPF_FUNC_MAPPER`). */
export const Helper = {
  map_lookup_elem: 1,
  ktime_get_ns: 5,
  get_smp_processor_id: 8,
  get_current_pid_tgid: 14,
  get_current_uid_gid: 15,
  get_current_comm: 16,
  get_current_task: 35,
  probe_read_user: 112,
  probe_read_kernel: 113,
  probe_read_kernel_str: 115,
  ringbuf_output: 130,
} as const;

/** One instruction's 8 bytes. */
export function insn(code: number, dst: number, src: number, off: number, imm: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint8(0, code);
  v.setUint8(1, (dst & 0xf) | ((src & 0xf) << 4));
  v.setInt16(2, off, true);
  v.setInt32(4, imm, true);
  return b;
}

/** Where a jump goes: a label resolved when the program is assembled. */
interface Fixup {
  at: number;
  label: string;
}

/**
 * Builds a program instruction by instruction; jumps name labels, resolved by
 * {@linkcode Asm.bytes}. Methods return `this` so a program reads as a listing.
 */
export class Asm {
  readonly #insns: Uint8Array[] = [];
  readonly #labels = new Map<string, number>();
  readonly #fixups: Fixup[] = [];

  /** Instructions so far (a 64-bit load counts two). */
  get length(): number {
    return this.#insns.length;
  }

  #push(i: Uint8Array): this {
    this.#insns.push(i);
    return this;
  }

  /** `dst = imm` (64-bit, sign-extended). */
  movImm(dst: Reg, imm: number): this {
    return this.#push(insn(Class.ALU64 | Alu.MOV | SRC_K, dst, 0, 0, imm));
  }

  /** `dst = src`. */
  mov(dst: Reg, src: Reg): this {
    return this.#push(insn(Class.ALU64 | Alu.MOV | SRC_X, dst, src, 0, 0));
  }

  /** `dst op= imm` (64-bit). */
  aluImm(op: number, dst: Reg, imm: number): this {
    return this.#push(insn(Class.ALU64 | op | SRC_K, dst, 0, 0, imm));
  }

  /** `dst op= src` (64-bit). */
  alu(op: number, dst: Reg, src: Reg): this {
    return this.#push(insn(Class.ALU64 | op | SRC_X, dst, src, 0, 0));
  }

  /** `dst = *(size *)(src + off)`. */
  load(bytes: Bytes, dst: Reg, src: Reg, off: number): this {
    return this.#push(insn(Class.LDX | Mode.MEM | SIZE_OF[bytes], dst, src, off, 0));
  }

  /** `*(size *)(dst + off) = src`. */
  store(bytes: Bytes, dst: Reg, off: number, src: Reg): this {
    return this.#push(insn(Class.STX | Mode.MEM | SIZE_OF[bytes], dst, src, off, 0));
  }

  /** `*(size *)(dst + off) = imm`. */
  storeImm(bytes: Bytes, dst: Reg, off: number, imm: number): this {
    return this.#push(insn(Class.ST | Mode.MEM | SIZE_OF[bytes], dst, 0, off, imm));
  }

  /** `lock *(u64 *)(dst + off) += src` (`BPF_ATOMIC | BPF_ADD`, no fetch). */
  atomicAdd64(dst: Reg, off: number, src: Reg): this {
    return this.#push(insn(Class.STX | Mode.ATOMIC | Size.DW, dst, src, off, Alu.ADD));
  }

  /** `dst = map` (the map's fd as a 64-bit pseudo immediate: two instructions). */
  loadMap(dst: Reg, mapFd: number): this {
    this.#push(insn(Class.LD | Size.DW | Mode.IMM, dst, PSEUDO_MAP_FD, 0, mapFd));
    return this.#push(insn(0, 0, 0, 0, 0));
  }

  /** Calls helper `id`: arguments in r1–r5, result in r0. */
  call(id: number): this {
    return this.#push(insn(Class.JMP | Jmp.CALL, 0, 0, 0, id));
  }

  /** `if dst op imm goto label`. */
  jumpImm(op: number, dst: Reg, imm: number, label: string): this {
    this.#fixups.push({ at: this.#insns.length, label });
    return this.#push(insn(Class.JMP | op | SRC_K, dst, 0, 0, imm));
  }

  /** `if dst op src goto label`. */
  jumpReg(op: number, dst: Reg, src: Reg, label: string): this {
    this.#fixups.push({ at: this.#insns.length, label });
    return this.#push(insn(Class.JMP | op | SRC_X, dst, src, 0, 0));
  }

  /** `goto label`. */
  jump(label: string): this {
    this.#fixups.push({ at: this.#insns.length, label });
    return this.#push(insn(Class.JMP | Jmp.JA, 0, 0, 0, 0));
  }

  /** Names the next instruction. */
  label(name: string): this {
    if (this.#labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.#labels.set(name, this.#insns.length);
    return this;
  }

  /** `exit` (returns r0). */
  exit(): this {
    return this.#push(insn(Class.JMP | Jmp.EXIT, 0, 0, 0, 0));
  }

  /** The program's bytes, every jump resolved (relative to the instruction after it). */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.#insns.length * 8);
    this.#insns.forEach((i, n) => out.set(i, n * 8));
    const v = new DataView(out.buffer);
    for (const f of this.#fixups) {
      const target = this.#labels.get(f.label);
      if (target === undefined) throw new Error(`label ${f.label} not defined`);
      v.setInt16(f.at * 8 + 2, target - f.at - 1, true);
    }
    return out;
  }
}

/**
 * `probe_read_kernel(base + dstOff, bytes, src + srcOff)`: copies kernel memory into the
 * program's own (the stack, `base` r10, or a map value); clobbers r1–r3 and r0.
 */
export function readKernel(
  a: Asm,
  base: Reg,
  dstOff: number,
  bytes: number,
  src: Reg,
  srcOff: number,
): void {
  a.mov(1, base).aluImm(Alu.ADD, 1, dstOff).movImm(2, bytes);
  if (src !== 3) a.mov(3, src);
  a.aluImm(Alu.ADD, 3, srcOff).call(Helper.probe_read_kernel);
}

/**
 * r0 = the address of key 0's value in array map `mapFd` (one u64 count, as `MapCounter`
 * reads it), using the 4-byte stack slot `keyAt`; jumps to `missing` when there is none (the
 * verifier's proof that r0 is not null). Clobbers r1–r5.
 */
export function counterAddress(a: Asm, mapFd: number, keyAt: number, missing: string): void {
  a.storeImm(4, 10, keyAt, 0);
  a.loadMap(1, mapFd).mov(2, 10).aluImm(Alu.ADD, 2, keyAt).call(Helper.map_lookup_elem);
  a.jumpImm(Jmp.JEQ, 0, 0, missing);
}

/** Adds one to that count (see {@linkcode counterAddress}); jumps to `missing` without it. */
export function countOne(a: Asm, mapFd: number, keyAt: number, missing: string): void {
  counterAddress(a, mapFd, keyAt, missing);
  a.movImm(1, 1).atomicAdd64(0, 0, 1);
}
