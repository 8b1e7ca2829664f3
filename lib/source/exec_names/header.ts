/**
 * What the kernel does with a file `execve` opened, read from its first bytes as the kernel
 * reads them: a `#!` script names an interpreter (binfmt_script), an ELF executable may
 * name a program interpreter (`PT_INTERP`, the dynamic loader, binfmt_elf). Either way the
 * kernel opens that interpreter next, in the same `execve`: the exec-name source uses this
 * to tell the opens of one `execve` from those of the next. Pure; tested on byte fixtures.
 *
 * @module
 */

/** What an opened executable makes the kernel open next. */
export type ExecHeader =
  /** A `#!` script: the kernel opens `interp` next (which is itself a script or an ELF). */
  | { kind: "script"; interp: string }
  /** An ELF executable: `interp` (the dynamic loader) is opened next; null: static. */
  | { kind: "elf"; interp: string | null }
  /** Neither: `execve` fails with ENOEXEC unless a binfmt_misc handler takes it. */
  | { kind: "other" };

/** The kernel's `BINPRM_BUF_SIZE`: how much of a `#!` line it reads. */
export const SHEBANG_BYTES = 256;

/** How much of the file {@linkcode parseExecHeader} asks for first. */
export const HEADER_BYTES = 4096;

/** ELF layout, per class (32- or 64-bit): header fields and program header fields. */
const ELF = {
  32: { phoff: 0x1c, phentsize: 0x2a, phnum: 0x2c, pOffset: 4, pFilesz: 16 },
  64: { phoff: 0x20, phentsize: 0x36, phnum: 0x38, pOffset: 8, pFilesz: 32 },
} as const;
const PT_INTERP = 3;
/** The kernel refuses a `PT_INTERP` longer than this (PATH_MAX) or shorter than 2. */
const MAX_INTERP = 4096;

/** Reads `length` bytes at `offset` of the same file (fewer at its end), or null. */
export type ReadAt = (offset: number, length: number) => Uint8Array | null;

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });

function pathOf(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return latin1.decode(bytes); // only compared with other paths; never printed
  }
}

/** The interpreter of a `#!` line, as binfmt_script splits it; null: none given. */
function shebang(head: Uint8Array): string | null {
  const end = Math.min(head.length, SHEBANG_BYTES);
  let i = 2;
  while (i < end && (head[i] === 0x20 || head[i] === 0x09)) i++;
  let j = i;
  while (j < end && head[j] !== 0x20 && head[j] !== 0x09 && head[j] !== 0x0a && head[j] !== 0) {
    j++;
  }
  return j > i ? pathOf(head.subarray(i, j)) : null;
}

function elf(head: Uint8Array, readAt: ReadAt): ExecHeader {
  const cls = head[4] === 1 ? 32 : head[4] === 2 ? 64 : 0;
  const le = head[5] === 1;
  if (!cls || (head[5] !== 1 && head[5] !== 2) || head.length < 0x40) return { kind: "other" };
  const L = ELF[cls];
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const phoff = cls === 64 ? Number(v.getBigUint64(L.phoff, le)) : v.getUint32(L.phoff, le);
  const entsize = v.getUint16(L.phentsize, le);
  const phnum = v.getUint16(L.phnum, le);
  if (entsize < (cls === 64 ? 56 : 32) || phnum === 0) return { kind: "elf", interp: null };
  const tableBytes = entsize * phnum;
  const table = phoff + tableBytes <= head.length
    ? head.subarray(phoff, phoff + tableBytes)
    : readAt(phoff, tableBytes);
  if (!table || table.length < tableBytes) return { kind: "other" };
  const t = new DataView(table.buffer, table.byteOffset, table.byteLength);
  for (let i = 0; i < phnum; i++) {
    const at = i * entsize;
    if (t.getUint32(at, le) !== PT_INTERP) continue;
    const off = cls === 64
      ? Number(t.getBigUint64(at + L.pOffset, le))
      : t.getUint32(at + L.pOffset, le);
    const size = cls === 64
      ? Number(t.getBigUint64(at + L.pFilesz, le))
      : t.getUint32(at + L.pFilesz, le);
    if (size < 2 || size > MAX_INTERP) return { kind: "other" }; // the kernel refuses it
    const raw = off + size <= head.length ? head.subarray(off, off + size) : readAt(off, size);
    if (!raw || raw.length < size) return { kind: "other" };
    const nul = raw.indexOf(0);
    return { kind: "elf", interp: pathOf(raw.subarray(0, nul < 0 ? raw.length : nul)) };
  }
  return { kind: "elf", interp: null };
}

/**
 * What the kernel does with an executable whose first bytes are `head` (up to
 * {@linkcode HEADER_BYTES}); `readAt` fetches program headers or an interpreter path that
 * lie beyond them.
 */
export function parseExecHeader(head: Uint8Array, readAt: ReadAt): ExecHeader {
  if (head[0] === 0x23 && head[1] === 0x21) { // #!
    const interp = shebang(head);
    return interp === null ? { kind: "other" } : { kind: "script", interp };
  }
  if (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) {
    return elf(head, readAt);
  }
  return { kind: "other" };
}
