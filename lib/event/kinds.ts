/**
 * The table of proc connector event kinds: one row per kind, holding its name, kernel code
 * (`enum proc_cn_event` in `linux/cn_proc.h`), payload layout (`event_data` member) and what
 * the process tree needs of it. Everything else is derived from this table: the event types,
 * the decoder and the encoder (`wire.ts`, `encode.ts`), the `--events` names and filter bits,
 * the record kinds, the fuzzer's kinds and the help text. Adding a kind is one row.
 *
 * @module
 */

/** `enum proc_cn_event` codes, and the filter-only `NONZERO_EXIT` bit. */
export const WHAT = {
  NONE: 0x0,
  FORK: 0x1,
  EXEC: 0x2,
  UID: 0x4,
  GID: 0x40,
  SID: 0x80,
  PTRACE: 0x100,
  COMM: 0x200,
  NONZERO_EXIT: 0x20000000,
  COREDUMP: 0x40000000,
  EXIT: 0x80000000,
} as const;

/** How one payload field is stored. `comm` is a NUL-padded byte array of `bytes` bytes. */
export type FieldType = "i32" | "u32" | "comm";

/** One field of an `event_data` member: where it is and how it is stored. */
export interface Field<T> {
  /** Offset inside `event_data`. */
  readonly at: number;
  /** Storage type. */
  readonly type: FieldType;
  /** Size of a `comm` field. */
  readonly bytes?: number;
  /** Phantom: the decoded value's type. */
  readonly value?: T;
}

function i32(at: number): Field<number> {
  return { at, type: "i32" };
}
function u32(at: number): Field<number> {
  return { at, type: "u32" };
}
function comm(at: number, bytes: number): Field<Uint8Array> {
  return { at, type: "comm", bytes };
}

/**
 * What each kind's payload decodes to, beyond the thread and process ids every event has.
 * A row of {@linkcode KINDS} must lay out exactly these fields (the compiler checks both
 * ways); this is the table's type, spelled out because exported constants need one.
 */
export interface Payloads {
  /** Reply to a subscription request: errno of the request (0: subscribed). */
  ack: { err: number };
  /** A new task: a process when `pid === tgid`, else a thread; the creator's ids. */
  fork: { parentPid: number; parentTgid: number };
  /** A successful execve. */
  exec: Record<never, never>;
  /** A task ended: raw wait status, signal sent to the parent (-1 for a thread), parent. */
  exit: { exitCode: number; exitSignal: number; parentPid: number; parentTgid: number };
  /** Real and effective uid after a change. */
  uid: { real: number; effective: number };
  /** Real and effective gid after a change. */
  gid: { real: number; effective: number };
  /** setsid(). */
  sid: Record<never, never>;
  /** ptrace attach (tracer ids) or detach (zeros). */
  ptrace: { tracerPid: number; tracerTgid: number };
  /** A rename: the raw name bytes (at most 15). */
  comm: { comm: Uint8Array };
  /** A core dump started; the parent's ids. */
  coredump: { parentPid: number; parentTgid: number };
}

/** Every kind's name, `ack` included. */
export type EventName = keyof Payloads;

/** The kinds a user can ask for (`--events`) and that become lines. */
export type EventKind = Exclude<EventName, "ack">;

/** Where a kind's payload fields are; `pid`/`tgid`, when laid out, fill the header's ids. */
export type Layout<P> =
  & { readonly [K in keyof P]: Field<P[K]> }
  & { readonly pid?: Field<number>; readonly tgid?: Field<number> };

/** One event kind: one row of {@linkcode KINDS}. */
export interface KindSpec<P = Record<string, unknown>> {
  /** `proc_event.what`. */
  readonly code: number;
  /** Payload bytes the kind needs beyond the `proc_event` header. */
  readonly size: number;
  /** Payload fields, by the name the decoded event carries them under. */
  readonly fields: Layout<P>;
  /** The process tree needs this kind whatever is printed (subscribed even when filtered). */
  readonly tree?: boolean;
  /** A fact about the whole process even when a thread reports it (shown without --threads). */
  readonly processWide?: boolean;
  /** One line for `--help`. */
  readonly help: string;
}

// Most members start with the thread and process ids.
const IDS = { pid: i32(0), tgid: i32(4) } as const;
const ID_CHANGE = { ...IDS, real: u32(8), effective: u32(12) } as const;

/**
 * Every kind, in `--help` order. `ack` is the kernel's reply to a subscription
 * (`PROC_EVENT_NONE`): decoded, never printed.
 */
export const KINDS: { readonly [K in EventName]: KindSpec<Payloads[K]> } = {
  ack: { code: WHAT.NONE, size: 4, fields: { err: u32(0) }, help: "subscription reply" },
  fork: {
    code: WHAT.FORK,
    size: 16,
    fields: { parentPid: i32(0), parentTgid: i32(4), pid: i32(8), tgid: i32(12) },
    tree: true,
    help: "a new process (or thread, with --threads)",
  },
  exec: {
    code: WHAT.EXEC,
    size: 8,
    fields: IDS,
    tree: true,
    processWide: true,
    help: "a new program image",
  },
  exit: {
    code: WHAT.EXIT,
    size: 24,
    fields: {
      ...IDS,
      exitCode: u32(8),
      exitSignal: i32(12),
      parentPid: i32(16),
      parentTgid: i32(20),
    },
    tree: true,
    help: "the process ended",
  },
  uid: {
    code: WHAT.UID,
    size: 16,
    fields: ID_CHANGE,
    tree: true, // the tree's uid, and the check of exec reads, follow it
    help: "real/effective uid changed",
  },
  gid: { code: WHAT.GID, size: 16, fields: ID_CHANGE, help: "real/effective gid changed" },
  sid: { code: WHAT.SID, size: 8, fields: IDS, help: "setsid()" },
  ptrace: {
    code: WHAT.PTRACE,
    size: 16,
    fields: { ...IDS, tracerPid: i32(8), tracerTgid: i32(12) },
    processWide: true,
    help: "a tracer attached or detached",
  },
  comm: {
    code: WHAT.COMM,
    size: 24,
    fields: { ...IDS, comm: comm(8, 16) },
    tree: true,
    help: "renamed (prctl PR_SET_NAME)",
  },
  coredump: {
    code: WHAT.COREDUMP,
    size: 16,
    fields: { ...IDS, parentPid: i32(8), parentTgid: i32(12) },
    processWide: true,
    help: "a core dump started",
  },
};

/** Fields every decoded event has. `pid` is the thread id, `tgid` the process id. */
export interface EventBase {
  /** Per-CPU sequence number from `cn_msg.seq`. */
  seq: number;
  /** `cn_msg.ack`: non-zero only on replies to our own requests. */
  ack: number;
  /** CPU the event was generated on. */
  cpu: number;
  /** Kernel CLOCK_MONOTONIC time of the event, in ns (exact below 2^53 ns ≈ 104 days of uptime). */
  timestampNs: number;
  /** Thread id (for fork: the child's; 0 for ack). */
  pid: number;
  /** Process id (thread group id; for fork: the child's; 0 for ack). */
  tgid: number;
}

/** The decoded event of kind `K`: the header, `what`, and the kind's payload. */
export type EventOf<K extends EventName> = K extends EventName
  ? EventBase & { what: K } & Payloads[K]
  : never;

/** Every name a user can ask for, in table order. */
export const EVENT_KINDS: readonly EventKind[] = (Object.keys(KINDS) as EventName[]).filter(
  (k): k is EventKind => k !== "ack",
);

/** Event names accepted by `--events`, mapped to their kernel filter bits. */
export const EVENT_BITS: Readonly<Record<EventKind, number>> = Object.fromEntries(
  EVENT_KINDS.map((k) => [k, KINDS[k].code]),
) as Record<EventKind, number>;

/** What the process tree needs from the kernel, whatever is printed. */
export const TREE_EVENTS: number = EVENT_KINDS.reduce(
  (m, k) => (KINDS[k].tree ? m | KINDS[k].code : m),
  0,
) >>> 0;

/** Kinds reported under the process even when a thread caused them. */
export const PROCESS_WIDE: ReadonlySet<EventName> = new Set(
  EVENT_KINDS.filter((k) => KINDS[k].processWide),
);

/** Every event bit the 6.6 filter understands (`PROC_EVENT_ALL`). */
export const WHAT_ALL: number = (EVENT_KINDS.reduce((m, k) => m | KINDS[k].code, 0) |
  WHAT.NONZERO_EXIT) >>> 0;

/** The row of a `what` code, for the decoder. */
export const KIND_BY_CODE: ReadonlyMap<number, EventName> = new Map(
  (Object.keys(KINDS) as EventName[]).map((k) => [KINDS[k].code, k]),
);

/** The `--events` help: one line per kind. */
export function eventsHelp(indent: string): string {
  const width = Math.max(...EVENT_KINDS.map((k) => k.length));
  return EVENT_KINDS.map((k) => `${indent}${k.padEnd(width)}  ${KINDS[k].help}`).join("\n");
}

/**
 * The kernel filter (`WHAT` bits) for a set of event names; undefined (everything) without
 * one. `always` adds bits the caller needs whatever is asked for (see {@linkcode TREE_EVENTS}).
 */
export function eventMask(
  events: Iterable<string> | undefined,
  always = 0,
): number | undefined {
  if (events === undefined) return undefined;
  let mask = always;
  for (const e of events) mask |= EVENT_BITS[e as EventKind] ?? 0;
  return mask >>> 0;
}

/** Whether `name` is a kind `--events` accepts. */
export function isEventKind(name: string): name is EventKind {
  return Object.hasOwn(EVENT_BITS, name);
}
