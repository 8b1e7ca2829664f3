/**
 * The BPF program of the exec-facts source, assembled from the running kernel's struct
 * offsets (read from its BTF), and the layout of the record it writes.
 *
 * It runs on the `sched_process_exec` raw tracepoint: inside `execve`, after the new image
 * is installed (new mm, new credentials, new comm) and before it runs one instruction, and
 * just before the proc connector's exec event is sent from the same call. So argv read
 * there is exactly what the program was given: nothing it does later can change it. The
 * path of the file that runs is taken there too, by walking its dentries and mounts, and the
 * working directory the same way (a path proctree keeps only when it reaches that file's or
 * directory's device and inode from here).
 *
 * The record is built in a per-CPU slot of an array map (the BPF stack is 512 bytes) and
 * copied into the ring buffer with its true length; the ring buffer is not asked to wake
 * the reader (`BPF_RB_NO_WAKEUP`): proctree drains it whenever the connector wakes it,
 * and every record has a connector event behind it. A record the ring buffer cannot take
 * is counted in the drops map.
 *
 * @module
 */

import { Alu, Asm, counterAddress, countOne, Helper, Jmp, readKernel } from "../../bpf/insn.ts";
import { type Btf, memberOffsets, type MemberTable, type OffsetsOf } from "../../bpf/btf.ts";

/** The most argv bytes a record carries; longer argv is cut there and marked truncated. */
export const ARGV_CAP_BYTES = 32768;

/** Bytes of the path as passed to `execve` a record carries (with its NUL). */
export const FILENAME_BYTES = 256;

/** Bytes of a task's comm with its NUL (the kernel's `TASK_COMM_LEN`): 15 of the name at most. */
export const COMM_BYTES = 16;

/** The record's fields: byte offsets, little-endian (one table, shared with the decoder). */
export const Rec = {
  /** u64 CLOCK_MONOTONIC ns (the connector's clock). */
  ktimeNs: 0,
  /** u32 process id (after exec the thread that called it leads the process). */
  tgid: 8,
  /** u32 the calling thread. */
  tid: 12,
  /** u32 `real_parent->tgid`. */
  ppid: 16,
  /** u32 real uid and gid (`bpf_get_current_uid_gid`). */
  uid: 20,
  gid: 24,
  /** u32 effective uid of the new credentials. */
  euid: 28,
  /** u32 `task->loginuid` (`(u32)-1`: unset). */
  loginUid: 32,
  /** i32 the result of reading argv from the new image (0: read). */
  argvRead: 36,
  /** u64 `task->start_boottime`, ns. */
  startBoottimeNs: 40,
  /** {@linkcode COMM_BYTES}, NUL-padded. */
  comm: 48,
  /** {@linkcode FILENAME_BYTES}, NUL-terminated. */
  filename: 64,
  /** u64 `mm->arg_end - mm->arg_start`: argv's true length in bytes. */
  argvBytes: 320,
  /**
   * {@linkcode FILENAME_BYTES}, NUL-terminated: `bprm->interp`, the path of the file that
   * runs (a `#!` script's interpreter; else the path as passed).
   */
  interp: 328,
  /** u64 inode number of the file that runs (`bprm->file`). */
  exeIno: 584,
  /** u32 its filesystem's device, kernel encoding (major << 20 | minor). */
  exeDev: 592,
  /** u32 bytes of the path of the file that runs, after argv (see {@linkcode PATH_CAP_BYTES}). */
  pathBytes: 596,
  /** u32 how the walk of that path ended ({@linkcode PathWalk}). */
  pathWalk: 600,
  /** u64 inode number of the working directory (`task->fs->pwd`). */
  cwdIno: 608,
  /** u32 its filesystem's device, as {@linkcode Rec.exeDev}. */
  cwdDev: 616,
  /** u32 bytes of the working directory's path, after the program's. */
  cwdBytes: 620,
  /** u32 how the walk of that path ended ({@linkcode PathWalk}). */
  cwdWalk: 624,
  /**
   * u64 the cgroup moves counted on the host since the source was loaded (the counter map of
   * {@linkcode cgroupMoveProgram}), read inside `execve`; all ones when unread.
   */
  cgroupMoves: 632,
  /** u32 1 when the task's cgroups (`task->cgroups`) are its parent's at the exec, else 0. */
  sameCgroups: 640,
  /**
   * Length of the fixed part; argv's bytes (at most {@linkcode ARGV_CAP_BYTES}) follow, then
   * the program's path, then the working directory's.
   */
  header: 648,
} as const;

/**
 * How the program's walk from the file that runs up to its mount namespace's root ended:
 * only a walk that reached the root is a whole path.
 */
export const PathWalk = {
  /** Not walked: the kernel's BTF lacks a member the walk reads ({@linkcode WALK_MEMBERS}). */
  NONE: 0,
  /** Reached the root of the mount namespace the file's mount is in: the path is whole. */
  ROOT: 1,
  /** Deeper than {@linkcode PATH_MAX_STEPS}, longer than {@linkcode PATH_CAP_BYTES}, or unreadable. */
  CUT: 2,
  /** A directory that is its own parent but not its mount's root (a detached or lazily unmounted tree). */
  DETACHED: 3,
  /**
   * Not walked: the file or directory was deleted (its dentry is unhashed, as `d_path` says
   * `(deleted)`); its old names reach nothing, or another file.
   */
  DELETED: 4,
} as const;

/**
 * Most bytes of the path of the file that runs: its names, last first, each with its NUL
 * (`PATH_MAX`). A name is at most 255 bytes (`NAME_MAX`).
 */
export const PATH_CAP_BYTES = 4096;

/** Bytes a name may take, with its NUL. */
const NAME_BYTES = 256;

/**
 * Most steps of the walk: one per name, and one per mount crossed (the verifier sees the
 * walk unrolled, so this bounds the program's size: about 55 instructions a step).
 */
export const PATH_MAX_STEPS = 32;

/** Bytes of one scratch slot: the largest record. */
export const SLOT_BYTES: number = Rec.header + ARGV_CAP_BYTES + 2 * PATH_CAP_BYTES;

/**
 * Where in the slot the directory's walk writes its names, before they are moved to just
 * after the file's: the slot's last {@linkcode PATH_CAP_BYTES}.
 */
const CWD_SCRATCH: number = SLOT_BYTES - PATH_CAP_BYTES;

/** `BPF_RB_NO_WAKEUP`. */
const RB_NO_WAKEUP = 1;

/** The kernel struct members the program reads: name, and the size it reads them as. */
export const MEMBERS = {
  taskMm: ["task_struct", "mm", 8],
  taskRealParent: ["task_struct", "real_parent", 8],
  taskTgid: ["task_struct", "tgid", 4],
  taskCred: ["task_struct", "cred", 8],
  taskLoginUid: ["task_struct", "loginuid", 4],
  taskStartBoottime: ["task_struct", "start_boottime", 8],
  mmArgStart: ["mm_struct", "arg_start", 8],
  mmArgEnd: ["mm_struct", "arg_end", 8],
  credEuid: ["cred", "euid", 4],
  bprmFilename: ["linux_binprm", "filename", 8],
  bprmInterp: ["linux_binprm", "interp", 8],
  bprmFile: ["linux_binprm", "file", 8],
  fileInode: ["file", "f_inode", 8],
  inodeIno: ["inode", "i_ino", 8],
  inodeSb: ["inode", "i_sb", 8],
  sbDev: ["super_block", "s_dev", 4],
} as const satisfies MemberTable;

/**
 * The members the path walk reads (`struct mount` is the kernel's own, not an ABI): without
 * them the program is built without the walk, and fanotify names every program as before.
 */
export const WALK_MEMBERS = {
  filePath: ["file", "f_path", null],
  pathMnt: ["path", "mnt", 8],
  pathDentry: ["path", "dentry", 8],
  dentryParent: ["dentry", "d_parent", 8],
  dentryName: ["dentry", "d_name", null],
  qstrName: ["qstr", "name", 8],
  vfsmountRoot: ["vfsmount", "mnt_root", 8],
  mountMnt: ["mount", "mnt", null],
  mountParent: ["mount", "mnt_parent", 8],
  mountMountpoint: ["mount", "mnt_mountpoint", 8],
  taskFs: ["task_struct", "fs", 8],
  fsPwd: ["fs_struct", "pwd", null],
  dentryInode: ["dentry", "d_inode", 8],
  dentryHash: ["dentry", "d_hash", null],
} as const satisfies MemberTable;

/** `pprev` in `struct hlist_bl_node`: null while the dentry is not hashed (`d_unhashed`). */
const HLIST_BL_PPREV = 8;

/**
 * The member the cgroup checks read (a kernel built without cgroups has none): without it
 * no exec is said to keep its creator's cgroups, and each is read from `/proc`.
 */
export const CGROUP_MEMBERS = {
  taskCgroups: ["task_struct", "cgroups", 8],
} as const satisfies MemberTable;

/** Byte offsets of {@linkcode CGROUP_MEMBERS} in the running kernel. */
export type CgroupOffsets = OffsetsOf<typeof CGROUP_MEMBERS>;

/** Byte offsets of {@linkcode WALK_MEMBERS} in the running kernel. */
export type WalkOffsets = OffsetsOf<typeof WALK_MEMBERS>;

/**
 * Byte offsets of {@linkcode MEMBERS} in the running kernel, and of the walk's and the cgroup
 * check's (null: not in this kernel's BTF).
 */
export type Offsets = OffsetsOf<typeof MEMBERS> & {
  walk: WalkOffsets | null;
  cgroups: CgroupOffsets | null;
};

/**
 * The offsets of {@linkcode MEMBERS} from `btf`; a string saying which one is missing (or of
 * an unexpected size) when the kernel's types are not what the program reads. The walk's
 * are null when any of {@linkcode WALK_MEMBERS} is.
 */
export function offsetsFrom(btf: Btf): Offsets | string {
  const off = memberOffsets(btf, MEMBERS);
  if (typeof off === "string") return off;
  const walk = memberOffsets(btf, WALK_MEMBERS);
  const cgroups = memberOffsets(btf, CGROUP_MEMBERS);
  return {
    ...off,
    walk: typeof walk === "string" ? null : walk,
    cgroups: typeof cgroups === "string" ? null : cgroups,
  };
}

/** The maps the program uses, by file descriptor. */
export interface ProgramMaps {
  /** Array, one {@linkcode SLOT_BYTES} value per possible CPU. */
  scratchFd: number;
  /** Ring buffer the records go to. */
  ringFd: number;
  /** Array, one u64: records the ring buffer could not take. */
  dropsFd: number;
  /** Array, one u64: cgroup moves ({@linkcode cgroupMoveProgram}). */
  movesFd: number;
}

/** Stack slots (below r10). */
const KEY = -4;
const TMP = -16;
const ARG_START = -24;
const ARG_END = -32;
const INODE = -40;
const DENTRY = -48;
const MOUNT = -56;
const PARENT = -64;
const PATH_OFF = -72;
const FILE = -80;
const ROOT = -88;
const EXE_PATH = -96;
const CSS = -104;

/**
 * The program. Registers kept across calls: r6 the tracepoint's arguments (`task`,
 * `old_pid`, `bprm`), r7 the record, r8 argv's length, r9 the task.
 */
export function execProgram(off: Offsets, maps: ProgramMaps): Uint8Array {
  const a = new Asm();
  a.mov(6, 1);
  // This CPU's scratch slot: the program does not nest on one CPU (the kernel skips it).
  a.call(Helper.get_smp_processor_id).store(4, 10, KEY, 0);
  a.loadMap(1, maps.scratchFd).mov(2, 10).aluImm(Alu.ADD, 2, KEY).call(Helper.map_lookup_elem);
  a.jumpImm(Jmp.JEQ, 0, 0, "out").mov(7, 0);

  a.call(Helper.ktime_get_ns).store(8, 7, Rec.ktimeNs, 0);
  a.call(Helper.get_current_pid_tgid).store(4, 7, Rec.tid, 0);
  a.aluImm(Alu.RSH, 0, 32).store(4, 7, Rec.tgid, 0);
  a.call(Helper.get_current_uid_gid).store(4, 7, Rec.uid, 0);
  a.aluImm(Alu.RSH, 0, 32).store(4, 7, Rec.gid, 0);
  a.mov(1, 7).aluImm(Alu.ADD, 1, Rec.comm).movImm(2, COMM_BYTES).call(Helper.get_current_comm);

  a.load(8, 9, 6, 0); // args[0]: the task
  readKernel(a, 10, TMP, 8, 9, off.taskRealParent);
  a.load(8, 3, 10, TMP);
  readKernel(a, 7, Rec.ppid, 4, 3, off.taskTgid);
  readKernel(a, 10, TMP, 8, 9, off.taskCred);
  a.load(8, 3, 10, TMP);
  readKernel(a, 7, Rec.euid, 4, 3, off.credEuid);
  readKernel(a, 7, Rec.loginUid, 4, 9, off.taskLoginUid);
  readKernel(a, 7, Rec.startBoottimeNs, 8, 9, off.taskStartBoottime);
  cgroupFacts(a, off, maps.movesFd);

  a.load(8, 8, 6, 16); // args[2]: the linux_binprm
  readKernel(a, 10, TMP, 8, 8, off.bprmFilename);
  a.mov(1, 7).aluImm(Alu.ADD, 1, Rec.filename).movImm(2, FILENAME_BYTES);
  a.load(8, 3, 10, TMP).call(Helper.probe_read_kernel_str);
  readKernel(a, 10, TMP, 8, 8, off.bprmInterp);
  a.mov(1, 7).aluImm(Alu.ADD, 1, Rec.interp).movImm(2, FILENAME_BYTES);
  a.load(8, 3, 10, TMP).call(Helper.probe_read_kernel_str);
  // The file that runs, by identity: proctree checks a path against it, never trusts one.
  readKernel(a, 10, TMP, 8, 8, off.bprmFile);
  a.load(8, 3, 10, TMP);
  readKernel(a, 10, INODE, 8, 3, off.fileInode);
  inodeId(a, off, Rec.exeIno, Rec.exeDev);

  readKernel(a, 10, TMP, 8, 9, off.taskMm);
  a.load(8, 8, 10, TMP);
  readKernel(a, 10, ARG_START, 8, 8, off.mmArgStart);
  readKernel(a, 10, ARG_END, 8, 8, off.mmArgEnd);
  a.load(8, 8, 10, ARG_END).load(8, 3, 10, ARG_START).alu(Alu.SUB, 8, 3);
  a.store(8, 7, Rec.argvBytes, 8);
  a.jumpImm(Jmp.JLE, 8, ARGV_CAP_BYTES, "capped").movImm(8, ARGV_CAP_BYTES).label("capped");
  a.mov(1, 7).aluImm(Alu.ADD, 1, Rec.header).mov(2, 8).load(8, 3, 10, ARG_START);
  a.call(Helper.probe_read_user).store(4, 7, Rec.argvRead, 0);

  a.storeImm(4, 7, Rec.pathBytes, 0).storeImm(4, 7, Rec.pathWalk, PathWalk.NONE);
  a.storeImm(4, 7, Rec.cwdBytes, 0).storeImm(4, 7, Rec.cwdWalk, PathWalk.NONE);
  a.storeImm(8, 7, Rec.cwdIno, 0).storeImm(4, 7, Rec.cwdDev, 0);
  a.storeImm(8, 10, PATH_OFF, 0).storeImm(8, 10, EXE_PATH, 0);
  if (off.walk) walkExe(a, off, off.walk);
  // argv's bytes, then the program's path, then the directory's.
  a.load(8, 3, 10, PATH_OFF).load(8, 1, 10, EXE_PATH).alu(Alu.ADD, 3, 1).alu(Alu.ADD, 3, 8);

  a.loadMap(1, maps.ringFd).mov(2, 7).aluImm(Alu.ADD, 3, Rec.header);
  a.movImm(4, RB_NO_WAKEUP).call(Helper.ringbuf_output);
  a.jumpImm(Jmp.JEQ, 0, 0, "out");

  countOne(a, maps.dropsFd, KEY, "out");

  a.label("out").movImm(0, 0).exit();
  return a.bytes();
}

/**
 * The identity of the inode the stack's `INODE` slot points to, into the record: its number
 * at `inoAt`, its filesystem's device at `devAt`. Uses the `PARENT` slot.
 */
function inodeId(a: Asm, off: Offsets, inoAt: number, devAt: number): void {
  a.load(8, 3, 10, INODE);
  readKernel(a, 7, inoAt, 8, 3, off.inodeIno);
  a.load(8, 3, 10, INODE);
  readKernel(a, 10, PARENT, 8, 3, off.inodeSb);
  a.load(8, 3, 10, PARENT);
  readKernel(a, 7, devAt, 4, 3, off.sbDev);
}

/**
 * The cgroup facts of the exec (r9: the task; r7: the record): the moves counted so far, and
 * whether the task's cgroups are its parent's (the same `css_set`, read at the same instant).
 */
function cgroupFacts(a: Asm, off: Offsets, movesFd: number): void {
  a.storeImm(8, 7, Rec.cgroupMoves, -1).storeImm(4, 7, Rec.sameCgroups, 0);
  const cg = off.cgroups;
  if (!cg) return;
  counterAddress(a, movesFd, KEY, "cg_unread");
  a.load(8, 1, 0, 0).store(8, 7, Rec.cgroupMoves, 1);
  a.label("cg_unread");
  readKernel(a, 10, CSS, 8, 9, cg.taskCgroups);
  readKernel(a, 10, TMP, 8, 9, off.taskRealParent);
  a.load(8, 3, 10, TMP);
  readKernel(a, 10, TMP, 8, 3, cg.taskCgroups);
  // A read that failed leaves zeros: never "the same".
  a.load(8, 1, 10, CSS).jumpImm(Jmp.JEQ, 1, 0, "cg_other");
  a.load(8, 2, 10, TMP).jumpReg(Jmp.JNE, 1, 2, "cg_other");
  a.storeImm(4, 7, Rec.sameCgroups, 1).label("cg_other");
}

/**
 * A program that counts cgroup moves in `movesFd`: every run when `fork` is null (on the
 * tracepoints of a task attached to a cgroup, tasks transferred, a cgroup renamed), else on
 * `sched_process_fork` only a child whose cgroups are not its parent's (`clone3` with
 * `CLONE_INTO_CGROUP`). An exec counted no move since the tree's containers were read, in its
 * parent's cgroups, is in the cgroups its creator's container was read from.
 */
export function cgroupMoveProgram(movesFd: number, fork: CgroupOffsets | null): Uint8Array {
  const a = new Asm();
  if (fork) {
    a.mov(6, 1);
    a.load(8, 3, 6, 0); // args[0]: the parent
    readKernel(a, 10, CSS, 8, 3, fork.taskCgroups);
    a.load(8, 3, 6, 8); // args[1]: the child
    readKernel(a, 10, TMP, 8, 3, fork.taskCgroups);
    a.load(8, 1, 10, CSS).load(8, 2, 10, TMP).jumpReg(Jmp.JEQ, 1, 2, "out");
  }
  countOne(a, movesFd, KEY, "out");
  a.label("out").movImm(0, 0).exit();
  return a.bytes();
}

/**
 * The two walks: the file that runs (its path after argv), then the working directory (its
 * path after the file's, its identity read from its dentry). Uses r6 (the tracepoint's
 * arguments) and r9; keeps r7, r8. Leaves the file's path length in `EXE_PATH` and the
 * directory's in `PATH_OFF`.
 */
function walkExe(a: Asm, off: Offsets, walk: WalkOffsets): void {
  a.mov(9, 7).aluImm(Alu.ADD, 9, Rec.header).alu(Alu.ADD, 9, 8);
  a.load(8, 3, 6, 16); // args[2]: the linux_binprm
  readKernel(a, 10, FILE, 8, 3, off.bprmFile);
  a.load(8, 3, 10, FILE);
  readKernel(a, 10, DENTRY, 8, 3, walk.filePath + walk.pathDentry);
  a.load(8, 3, 10, FILE);
  readKernel(a, 10, TMP, 8, 3, walk.filePath + walk.pathMnt);
  walkPath(a, "exe", walk, Rec.pathBytes, Rec.pathWalk);
  // The directory's walk starts from a state that does not depend on how the file's ended
  // (its length is in the record, not on the stack): the verifier then checks it once, not
  // once per way the first walk ended (that made loading 5 times slower).
  a.storeImm(8, 10, PATH_OFF, 0);
  a.mov(9, 7).aluImm(Alu.ADD, 9, CWD_SCRATCH);
  a.load(8, 3, 6, 0); // args[0]: the task
  readKernel(a, 10, FILE, 8, 3, walk.taskFs); // its fs_struct
  a.load(8, 3, 10, FILE);
  readKernel(a, 10, DENTRY, 8, 3, walk.fsPwd + walk.pathDentry);
  a.load(8, 3, 10, FILE);
  readKernel(a, 10, TMP, 8, 3, walk.fsPwd + walk.pathMnt);
  // The directory by identity, as the program: its inode's number and device.
  a.load(8, 3, 10, DENTRY);
  readKernel(a, 10, INODE, 8, 3, walk.dentryInode);
  inodeId(a, off, Rec.cwdIno, Rec.cwdDev);
  walkPath(a, "cwd", walk, Rec.cwdBytes, Rec.cwdWalk);
  // Both lengths back from the record (bounded again), the directory's names moved to just
  // after the file's: the record is one piece.
  a.load(4, 1, 7, Rec.pathBytes).jumpImm(Jmp.JGT, 1, PATH_CAP_BYTES, "paths_cut");
  a.load(4, 2, 7, Rec.cwdBytes).jumpImm(Jmp.JGT, 2, PATH_CAP_BYTES, "paths_cut");
  a.store(8, 10, EXE_PATH, 1).store(8, 10, PATH_OFF, 2);
  a.mov(3, 7).aluImm(Alu.ADD, 3, CWD_SCRATCH);
  a.mov(1, 7).aluImm(Alu.ADD, 1, Rec.header).alu(Alu.ADD, 1, 8);
  a.load(8, 4, 10, EXE_PATH).alu(Alu.ADD, 1, 4);
  a.call(Helper.probe_read_kernel).jump("paths_done");
  // Never (the walks stop at the cap); a record with no path then, rather than a wrong one.
  a.label("paths_cut").storeImm(4, 7, Rec.pathBytes, 0).storeImm(4, 7, Rec.cwdBytes, 0);
  a.storeImm(8, 10, EXE_PATH, 0).storeImm(8, 10, PATH_OFF, 0);
  a.label("paths_done");
}

/**
 * A path taken inside `execve` by walking from a dentry (`DENTRY`) of a mount (`TMP`, its
 * `vfsmount`) up to the root of the mount namespace that mount is in — what `d_path` would
 * say from that root, without `d_path`'s lock (a rename during the walk can give a path that
 * never was: proctree keeps a path only when it reaches the walk's start, by device and
 * inode, from here). A deleted start is not walked: its old path would still reach it from
 * a check that remembers paths (`sameFile`). Names are written last first from r9, each with
 * its NUL; the record's `bytesAt` and `walkAt` say how much and whether it is whole. Unrolled
 * {@linkcode PATH_MAX_STEPS} times; each step crosses a mount or takes one name. Labels are
 * prefixed with `tag`. Keeps r6–r9.
 */
function walkPath(a: Asm, tag: string, off: WalkOffsets, bytesAt: number, walkAt: number): void {
  const at = (label: string) => `${tag}_${label}`;
  a.storeImm(4, 7, walkAt, PathWalk.CUT);
  // Deleted (`d_unlinked`: unhashed, and not a root, which is never hashed): no path.
  a.load(8, 3, 10, DENTRY);
  readKernel(a, 10, PARENT, 8, 3, off.dentryHash + HLIST_BL_PPREV);
  a.load(8, 1, 10, PARENT).jumpImm(Jmp.JNE, 1, 0, at("hashed"));
  a.load(8, 3, 10, DENTRY);
  readKernel(a, 10, PARENT, 8, 3, off.dentryParent);
  a.load(8, 1, 10, PARENT).load(8, 3, 10, DENTRY).jumpReg(Jmp.JNE, 1, 3, at("deleted"));
  a.label(at("hashed"));
  a.load(8, 3, 10, TMP);
  readKernel(a, 10, ROOT, 8, 3, off.vfsmountRoot);
  a.load(8, 1, 10, TMP).aluImm(Alu.SUB, 1, off.mountMnt).store(8, 10, MOUNT, 1);
  for (let step = 0; step < PATH_MAX_STEPS; step++) {
    const name = at(`name${step}`), next = at(`step${step + 1}`);
    // At the root of its mount: cross to the mount it is mounted on, or stop at the top.
    a.load(8, 1, 10, ROOT).load(8, 2, 10, DENTRY).jumpReg(Jmp.JNE, 1, 2, name);
    a.load(8, 3, 10, MOUNT);
    readKernel(a, 10, PARENT, 8, 3, off.mountParent);
    a.load(8, 1, 10, PARENT).load(8, 3, 10, MOUNT).jumpReg(Jmp.JEQ, 1, 3, at("walked"));
    readKernel(a, 10, DENTRY, 8, 3, off.mountMountpoint);
    a.load(8, 3, 10, PARENT).store(8, 10, MOUNT, 3).aluImm(Alu.ADD, 3, off.mountMnt);
    readKernel(a, 10, ROOT, 8, 3, off.vfsmountRoot);
    a.jump(next);
    // Else one name, and up to its parent.
    a.label(name);
    a.load(8, 3, 10, DENTRY);
    readKernel(a, 10, PARENT, 8, 3, off.dentryParent);
    a.load(8, 1, 10, PARENT).load(8, 3, 10, DENTRY).jumpReg(Jmp.JEQ, 1, 3, at("detached"));
    readKernel(a, 10, TMP, 8, 3, off.dentryName + off.qstrName);
    a.load(8, 1, 10, PATH_OFF).jumpImm(Jmp.JGT, 1, PATH_CAP_BYTES - NAME_BYTES, at("cut"));
    a.alu(Alu.ADD, 1, 9).movImm(2, NAME_BYTES).load(8, 3, 10, TMP);
    a.call(Helper.probe_read_kernel_str).jumpImm(Jmp.JSLE, 0, 0, at("cut"));
    a.load(8, 1, 10, PATH_OFF).alu(Alu.ADD, 1, 0).store(8, 10, PATH_OFF, 1);
    a.load(8, 1, 10, PARENT).store(8, 10, DENTRY, 1);
    a.label(next);
  }
  a.jump(at("cut"));
  a.label(at("detached")).storeImm(4, 7, walkAt, PathWalk.DETACHED).jump(at("cut"));
  a.label(at("deleted")).storeImm(4, 7, walkAt, PathWalk.DELETED).jump(at("cut"));
  a.label(at("walked")).storeImm(4, 7, walkAt, PathWalk.ROOT);
  a.label(at("cut")).load(8, 1, 10, PATH_OFF).store(4, 7, bytesAt, 1);
}
