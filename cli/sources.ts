/**
 * The sources' side of every command: the options `watch` and `run` share (`--rcvbuf`,
 * `--backlog`, `--exec-facts`, `--exec-names`, `--argv`, `--files`, `--net`: their help and parsing, and
 * the session options they make), opening the session with subscription failures as
 * one-line {@linkcode CliError}s, and the notes of the listening line on what each source
 * could do.
 *
 * @module
 */

import {
  ARGV_MODES,
  type ArgvMode,
  EXEC_FACTS_MODES,
  EXEC_NAME_MODES,
  type ExecFactsMode,
  type ExecNameMode,
  type ListenOptions,
  Session,
  SourceUnavailable,
} from "../session.ts";
import { DEFAULT_RCVBUF_BYTES, type ProcConnector } from "../ffi/source/connector.ts";
import { DEFAULT_BACKLOG_BYTES, type ReaderThread } from "../ffi/source/connector_reader.ts";
import { CliError, say } from "./errors.ts";
import { bytesFlag, formatBytes } from "./flags.ts";

/** Smallest receive buffer `--rcvbuf` accepts (a page): 0 would mean the kernel minimum. */
export const MIN_RCVBUF_BYTES = 4096;

/** The `--rcvbuf` value of any command (undefined: the default). */
export function rcvbufFlag(value: string | undefined): number {
  return value === undefined ? DEFAULT_RCVBUF_BYTES : bytesFlag(value, "rcvbuf", MIN_RCVBUF_BYTES);
}

/** The `--backlog` value of any command (undefined: the default; 0: no reader thread). */
export function backlogFlag(value: string | undefined): number {
  const bytes = value === undefined ? DEFAULT_BACKLOG_BYTES : bytesFlag(value, "backlog");
  if (bytes > 0 && bytes < MIN_BACKLOG_BYTES) {
    throw new CliError(
      `--backlog expects 0 or at least ${formatBytes(MIN_BACKLOG_BYTES)}, got ${
        JSON.stringify(value)
      }`,
      2,
    );
  }
  return bytes;
}

/** Smallest backlog `--backlog` accepts besides 0: a few bursts' worth. */
export const MIN_BACKLOG_BYTES = 64 * 1024;

/** The `--rcvbuf` and `--backlog` help text, shared by `watch` and `run`. */
export const BUFFER_HELP =
  `  --rcvbuf SIZE        the kernel's queue for proctree: socket receive buffer to ask for
                       (default ${formatBytes(DEFAULT_RCVBUF_BYTES)}, at least ${
    formatBytes(MIN_RCVBUF_BYTES)
  }); kernel memory is charged only while
                       events wait in it (~500 B each; worst case twice SIZE)
  --backlog SIZE       proctree's own queue: a reader thread empties the socket into
                       SIZE bytes of memory (default ${
    formatBytes(DEFAULT_BACKLOG_BYTES)
  }, 80 B an event) while the rest of
                       proctree is busy; when full, events are dropped and reported as
                       {"event":"lost","reason":"overrun",…}; 0: no reader thread`;

/** The `--exec-names` help text, shared by `watch` and `run`. */
export const EXEC_NAMES_HELP = `  --exec-names auto|fanotify|proc
                       where exec names come from: fanotify names every executable
                       (needs CAP_SYS_ADMIN; with bpf exec facts, only the scripts and
                       what their walked path did not name), /proc only what is still
                       running when read; auto (default) uses fanotify when permitted
                       and says so otherwise`;

/** The `--exec-facts` help text, shared by `watch` and `run`. */
export const EXEC_FACTS_HELP = `  --exec-facts auto|bpf|proc
                       where each exec's argv, comm, uid, login uid and parent come from:
                       bpf reads them, and the path of the program, inside execve
                       (exact for every exec, even one that exits at once; needs root
                       or CAP_BPF+CAP_PERFMON and kernel BTF),
                       proc reads /proc when the event arrives (null for a process already
                       gone); auto (default) uses bpf where it can run and says why not
  --btf FILE           where the bpf exec facts read the kernel's types (default
                       /sys/kernel/btf/vmlinux; e.g. a BTF file made for a kernel without)`;

/** The `--argv` help text, shared by `watch` and `run`. */
export const ARGV_HELP =
  `  --argv proc|audit    audit: also take argv from the kernel's audit records, exact at the
                       call (for hosts where the bpf exec facts cannot run; needs
                       CAP_AUDIT_CONTROL and CAP_AUDIT_READ; adds an audit rule while
                       proctree runs: see the README for what that changes and costs);
                       proc (default): from the exec facts alone`;

/** The `--files` help text, shared by `watch` and `run`. */
export const FILES_HELP =
  `  --files PATH         also report changes to files under PATH (create, write, delete,
                       rename, attrib), each with the process that made it and its chain;
                       repeatable (needs CAP_SYS_ADMIN and Linux ≥ 5.17)`;

/** `value` if it is one of `modes`, `fallback` when absent; else a usage error naming `flag`. */
function choiceFlag<T extends string>(
  flag: string,
  value: string | undefined,
  modes: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!(modes as readonly string[]).includes(value)) {
    const expected = modes.length === 2 ? modes.join(" or ") : modes.join(", ");
    throw new CliError(`--${flag} expects ${expected}, got ${JSON.stringify(value)}`, 2);
  }
  return value as T;
}

/** The `--argv` value of any command (undefined: `proc`). */
export function argvFlag(value: string | undefined): ArgvMode {
  return choiceFlag("argv", value, ARGV_MODES, "proc");
}

/** The `--exec-facts` value of any command (undefined: `auto`). */
export function execFactsFlag(value: string | undefined): ExecFactsMode {
  return choiceFlag("exec-facts", value, EXEC_FACTS_MODES, "auto");
}

/** The `--exec-names` value of any command (undefined: `auto`). */
export function execNamesFlag(value: string | undefined): ExecNameMode {
  return choiceFlag("exec-names", value, EXEC_NAME_MODES, "auto");
}

/** The source options every command parses, as its config holds them. */
export type SourceConfig =
  & Required<
    Pick<
      ListenOptions,
      "rcvbufBytes" | "backlogBytes" | "execNames" | "execFacts" | "argv" | "files"
    >
  >
  & { btfPath: string | undefined; net?: boolean };

/** The session options of a command's source options (the same for `watch` and `run`). */
export function sourceOptions(c: SourceConfig): ListenOptions {
  return {
    rcvbufBytes: c.rcvbufBytes,
    backlogBytes: c.backlogBytes,
    execNames: c.execNames,
    execFacts: c.execFacts,
    btfPath: c.btfPath,
    argv: c.argv,
    files: c.files,
    net: c.net,
  };
}

/**
 * Subscribes (see `session.ts`); a failure is one line and exit status 1. When exec names
 * fall back to `/proc`, says why on stderr, once.
 */
export function openSession(opts: ListenOptions): Session {
  try {
    const s = Session.open(opts);
    if (s.files) s.files.onNote = (m) => say(`proctree: ${m}`);
    if (s.execNamesNote) say(s.execNamesNote);
    if (s.audit) say(auditNote(s.audit.setup));
    return s;
  } catch (e) {
    if (e instanceof SourceUnavailable) throw new CliError(e.line, 1);
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`needs --allow-ffi and --allow-read: ${(e as Error).message}`, 1);
    }
    throw e;
  }
}

/**
 * `rcvbuf 16M`, or what was granted when it is less than was asked; then the reader thread:
 * `reader thread (backlog 32M, nice -10)`, or why there is none.
 */
export function rcvbufNote(s: {
  connector: Pick<ProcConnector, "rcvbufBytes" | "askedRcvbufBytes" | "readerNote"> & {
    reader: Pick<ReaderThread, "backlogBytes" | "nice"> | null;
  };
}): string {
  // Linux doubles a requested buffer for its bookkeeping and reports the doubled size.
  const usable = Math.floor(s.connector.rcvbufBytes / 2);
  const asked = s.connector.askedRcvbufBytes;
  const rcvbuf = usable < asked
    ? `rcvbuf ${formatBytes(usable)}, less than the ${formatBytes(asked)} asked: ` +
      `net.core.rmem_max caps it without CAP_NET_ADMIN`
    : `rcvbuf ${formatBytes(asked)}`;
  const r = s.connector.reader;
  if (r !== null) {
    return `${rcvbuf}, reader thread (backlog ${formatBytes(r.backlogBytes)}` +
      `${r.nice !== 0 ? `, nice ${r.nice}` : ""})`;
  }
  return s.connector.readerNote === null
    ? rcvbuf
    : `${rcvbuf}, no reader thread (${s.connector.readerNote})`;
}

/** What `--argv audit` changed on the host, said once on stderr. */
export function auditNote(setup: NonNullable<Session["audit"]>["setup"]): string {
  const parts = ["proctree: --argv audit: an execve rule is installed until proctree stops"];
  if (setup.enabledByProctree) parts.push("auditing was off and is on until then");
  if (setup.staleRulesRemoved) {
    parts.push(`${setup.staleRulesRemoved} rule(s) left by a proctree that died were removed`);
  }
  parts.push(
    setup.daemonPid
      ? `the audit daemon (pid ${setup.daemonPid}) logs every exec it records too`
      : "with no audit daemon, the kernel also prints some records to its log (rate-limited)",
  );
  return parts.join("; ");
}

/**
 * `, files: 1 filesystem marked, queue 262144 events, 120 directories known` with
 * `--files`, else "", for the listening line.
 */
export function filesNote(s: Session): string {
  const f = s.files;
  if (!f) return "";
  const fs = f.marks.filesystems;
  const dirs = f.marks.directories;
  const known = f.events.size;
  return `, files: ${fs} ${fs === 1 ? "filesystem" : "filesystems"}` +
    `${dirs ? ` and ${plural(dirs, "directory", "directories")}` : ""} marked, ` +
    (f.queueEvents ? `queue ${f.queueEvents} events, ` : "") +
    `${plural(known, "directory", "directories")} known` +
    (f.missing.length ? `; not there yet, watched for: ${f.missing.join(", ")}` : "") +
    (f.unwatched.length ? `; not watched: ${f.unwatched.join(", ")}` : "");
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The `--net` help text. */
export const NET_HELP =
  `  --net                also report network connections: connect, accept and bind lines
                       (inet, inet6, unix) with the process and its chain; needs root, or
                       CAP_BPF and CAP_PERFMON, and the kernel's BTF`;

/** `, net: connect, accept, bind` with `--net`, else "", for the listening line. */
export function netNote(s: Session): string {
  return s.net ? ", net: connect, accept, bind" : "";
}

/** `exec facts: bpf`, or `exec facts: proc (why not bpf)`, for the listening line. */
export function execFactsNote(s: Session): string {
  if (s.bpfExec) return "exec facts: bpf";
  return `exec facts: proc${s.execFactsWhy ? ` (${s.execFactsWhy})` : ""}`;
}

/** `exec names: fanotify (12 filesystems)` or `exec names: /proc`, for the listening line. */
export function execNamesNote(s: Session): string {
  const f = s.fanotify;
  if (!f) return "exec names: /proc";
  const marked = f.marks.filesystems + f.marks.mounts;
  return `exec names: fanotify (${marked} ${marked === 1 ? "filesystem" : "filesystems"}` +
    `${f.marks.failed ? `, ${f.marks.failed} not markable` : ""})`;
}
