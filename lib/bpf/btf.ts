/**
 * A reader of BTF, the kernel's description of its own types (`/sys/kernel/btf/vmlinux`):
 * enough of it to find where a member of a kernel struct sits in the running kernel, so a
 * BPF program can read `task_struct.mm` without a compiler or headers of that kernel.
 *
 * Layout per `include/uapi/linux/btf.h`: a header, then a type section (each type a
 * 12-byte `btf_type` followed by kind-specific data) and a string section. Type ids count
 * from 1 in section order; 0 is void.
 *
 * @module
 */

/** `BTF_MAGIC`, little-endian. */
export const BTF_MAGIC = 0xeb9f;

/** `BTF_KIND_*`: the kinds whose trailing data this reader must know to step over. */
export const BtfKind = {
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;

/** Bytes after the 12-byte `btf_type` for a kind with `vlen` entries; null: a kind unknown here. */
function trailerBytes(kind: number, vlen: number): number | null {
  switch (kind) {
    case BtfKind.INT:
    case BtfKind.VAR:
    case BtfKind.DECL_TAG:
      return 4;
    case BtfKind.ARRAY:
      return 12;
    case BtfKind.STRUCT:
    case BtfKind.UNION:
    case BtfKind.DATASEC:
    case BtfKind.ENUM64:
      return 12 * vlen;
    case BtfKind.ENUM:
    case BtfKind.FUNC_PROTO:
      return 8 * vlen;
    case BtfKind.PTR:
    case BtfKind.FWD:
    case BtfKind.TYPEDEF:
    case BtfKind.VOLATILE:
    case BtfKind.CONST:
    case BtfKind.RESTRICT:
    case BtfKind.FUNC:
    case BtfKind.FLOAT:
    case BtfKind.TYPE_TAG:
      return 0;
    default:
      return null;
  }
}

/** A member's place: byte offset within its outermost struct, and its size in bytes. */
export interface MemberPlace {
  offsetBytes: number;
  sizeBytes: number;
}

/** The BTF data is not what this reader understands (a one-line reason). */
export class BtfError extends Error {
  override name = "BtfError";
}

/** The types of one BTF blob, indexed by id, with lookups by struct name. */
export class Btf {
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  /** Byte offset of each type's `btf_type`, by id (index 0 unused). */
  readonly #typeAt: number[] = [0];
  readonly #strOff: number;
  readonly #strLen: number;
  #structs: Map<string, number> | null = null;

  /** Parses the header and indexes the types; throws {@linkcode BtfError} on malformed data. */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const v = this.#view;
    if (bytes.byteLength < 24 || v.getUint16(0, true) !== BTF_MAGIC) {
      throw new BtfError("not BTF (bad magic)");
    }
    const hdrLen = v.getUint32(4, true);
    const typeOff = hdrLen + v.getUint32(8, true);
    const typeLen = v.getUint32(12, true);
    this.#strOff = hdrLen + v.getUint32(16, true);
    this.#strLen = v.getUint32(20, true);
    if (typeOff + typeLen > bytes.byteLength || this.#strOff + this.#strLen > bytes.byteLength) {
      throw new BtfError("sections run past the end of the data");
    }
    for (let at = typeOff; at < typeOff + typeLen;) {
      if (at + 12 > typeOff + typeLen) throw new BtfError("a type runs past its section");
      const info = v.getUint32(at + 4, true);
      const extra = trailerBytes((info >>> 24) & 0x1f, info & 0xffff);
      if (extra === null) throw new BtfError(`unknown BTF kind ${(info >>> 24) & 0x1f}`);
      if (at + 12 + extra > typeOff + typeLen) throw new BtfError("a type runs past its section");
      this.#typeAt.push(at);
      at += 12 + extra;
    }
  }

  /** Number of types (ids 1..count). */
  get count(): number {
    return this.#typeAt.length - 1;
  }

  #name(off: number): string {
    if (off >= this.#strLen) return "";
    const start = this.#strOff + off;
    let end = start;
    while (end < this.#strOff + this.#strLen && this.#bytes[end] !== 0) end++;
    return new TextDecoder().decode(this.#bytes.subarray(start, end));
  }

  #kind(id: number): number {
    return (this.#view.getUint32(this.#typeAt[id] + 4, true) >>> 24) & 0x1f;
  }

  /** The id of the struct called `name`; null when the kernel has none. */
  structId(name: string): number | null {
    if (!this.#structs) {
      this.#structs = new Map();
      for (let id = 1; id <= this.count; id++) {
        if (this.#kind(id) !== BtfKind.STRUCT) continue;
        const n = this.#name(this.#view.getUint32(this.#typeAt[id], true));
        if (n && !this.#structs.has(n)) this.#structs.set(n, id);
      }
    }
    return this.#structs.get(name) ?? null;
  }

  /** Size in bytes of type `id`, through typedefs and qualifiers; null for a kind without one. */
  sizeOf(id: number): number | null {
    const seen = new Set<number>();
    while (id > 0 && id < this.#typeAt.length && !seen.has(id)) {
      seen.add(id);
      const at = this.#typeAt[id];
      const kind = this.#kind(id);
      switch (kind) {
        case BtfKind.INT:
        case BtfKind.STRUCT:
        case BtfKind.UNION:
        case BtfKind.ENUM:
        case BtfKind.ENUM64:
        case BtfKind.FLOAT:
          return this.#view.getUint32(at + 8, true);
        case BtfKind.PTR:
          return 8;
        case BtfKind.ARRAY: {
          const elem = this.sizeOf(this.#view.getUint32(at + 12, true));
          return elem === null ? null : elem * this.#view.getUint32(at + 20, true);
        }
        case BtfKind.TYPEDEF:
        case BtfKind.VOLATILE:
        case BtfKind.CONST:
        case BtfKind.RESTRICT:
        case BtfKind.TYPE_TAG:
          id = this.#view.getUint32(at + 8, true);
          continue;
        default:
          return null;
      }
    }
    return null;
  }

  /** `id` with typedefs and qualifiers stripped. */
  #resolve(id: number): number {
    for (let i = 0; i < 32 && id > 0; i++) {
      const k = this.#kind(id);
      if (k !== BtfKind.TYPEDEF && k !== BtfKind.VOLATILE && k !== BtfKind.CONST) return id;
      id = this.#view.getUint32(this.#typeAt[id] + 8, true);
    }
    return id;
  }

  /**
   * Where member `member` of struct or union `id` sits, looking inside anonymous members
   * (`mm_struct.arg_start` is in an unnamed struct); null when absent or a bit field.
   */
  memberOf(id: number, member: string, depth = 0): MemberPlace | null {
    const kind = this.#kind(id);
    if ((kind !== BtfKind.STRUCT && kind !== BtfKind.UNION) || depth > 8) return null;
    const at = this.#typeAt[id];
    const info = this.#view.getUint32(at + 4, true);
    const bitfields = (info >>> 31) === 1;
    const vlen = info & 0xffff;
    for (let i = 0; i < vlen; i++) {
      const m = at + 12 + 12 * i;
      const nameOff = this.#view.getUint32(m, true);
      const type = this.#view.getUint32(m + 4, true);
      const raw = this.#view.getUint32(m + 8, true);
      if (bitfields && raw >>> 24 !== 0) {
        if (this.#name(nameOff) === member) return null; // a bit field: no byte place
        continue;
      }
      const bitOffset = bitfields ? raw & 0xffffff : raw;
      if (nameOff === 0) {
        const inner = this.memberOf(this.#resolve(type), member, depth + 1);
        if (inner) return { ...inner, offsetBytes: inner.offsetBytes + bitOffset / 8 };
        continue;
      }
      if (this.#name(nameOff) !== member) continue;
      const size = this.sizeOf(type);
      if (size === null || bitOffset % 8 !== 0) return null;
      return { offsetBytes: bitOffset / 8, sizeBytes: size };
    }
    return null;
  }

  /** Where `struct.member` sits (see {@linkcode memberOf}); null when either is absent. */
  member(struct: string, member: string): MemberPlace | null {
    const id = this.structId(struct);
    return id === null ? null : this.memberOf(id, member);
  }
}

/**
 * Kernel struct members a program reads: its name for each, and `[struct, member, bytes]`;
 * `bytes` null for an embedded struct the program only steps into (its size is not read).
 */
export type MemberTable = Readonly<Record<string, readonly [string, string, number | null]>>;

/** The byte offset of each member of a {@linkcode MemberTable}. */
export type OffsetsOf<T extends MemberTable> = { -readonly [K in keyof T]: number };

/**
 * The offsets of `members` in `btf`; a string saying which one is missing (or of another
 * size than the program reads) when the kernel's types are not what the program expects.
 */
export function memberOffsets<T extends MemberTable>(btf: Btf, members: T): OffsetsOf<T> | string {
  const out: Partial<Record<keyof T, number>> = {};
  for (const [key, [struct, member, bytes]] of Object.entries(members)) {
    const place = btf.member(struct, member);
    if (!place) return `no ${struct}.${member} in the kernel's BTF`;
    if (bytes !== null && place.sizeBytes !== bytes) {
      return `${struct}.${member} is ${place.sizeBytes} bytes, not ${bytes}`;
    }
    out[key as keyof T] = place.offsetBytes;
  }
  return out as OffsetsOf<T>;
}
