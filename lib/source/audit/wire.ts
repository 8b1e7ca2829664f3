/**
 * The kernel audit subsystem's netlink ABI, as far as `--argv audit` uses it
 * (`include/uapi/linux/audit.h`): message types, `struct audit_status`, `struct
 * audit_rule_data` and the text of the records. Pure: byte fixtures test it.
 *
 * ```
 * audit_status     u32 mask | enabled | failure | pid | rate_limit | backlog_limit | lost | backlog …
 * audit_rule_data  u32 flags | action | field_count | mask[64] | fields[64] | values[64]
 *                  | fieldflags[64] | buflen, then buflen bytes of string values (the key)
 * record           nlmsghdr (type 1300 SYSCALL, 1309 EXECVE, 1307 CWD, 1320 EOE …), then
 *                  text: `audit(1764450000.123:456): key=value key=value …`
 * ```
 *
 * A record's strings are "untrusted": quoted (`"…"`) when printable ASCII without `"`, else
 * the hex of their bytes. An argument too long for one record is split: `aN_len=LEN`, then
 * `aN[0]=…`, `aN[1]=…`, possibly over several EXECVE records of the same event (`LEN`
 * counts what is written: hex digits when the argument is encoded).
 *
 * @module
 */

import { decodeBytes } from "../../text.ts";

/** The netlink protocol number of the audit socket. */
export const NETLINK_AUDIT = 9;
/** The read-only multicast group of audit records (needs `CAP_AUDIT_READ`). */
export const AUDIT_NLGRP_READLOG = 1;

/** Message types proctree sends or reads. */
export const AUDIT_MSG = {
  GET: 1000,
  SET: 1001,
  ADD_RULE: 1011,
  DEL_RULE: 1012,
  LIST_RULES: 1013,
  SYSCALL: 1300,
  PATH: 1302,
  CWD: 1307,
  EXECVE: 1309,
  EOE: 1320,
  PROCTITLE: 1327,
} as const;

/** `struct audit_status`: the u32 fields proctree reads or sets, by byte offset. */
export const AUDIT_STATUS = {
  size: 44,
  mask: 0,
  enabled: 4,
  failure: 8,
  pid: 12,
  rateLimit: 16,
  backlogLimit: 20,
  lost: 24,
  backlog: 28,
} as const;

/** `audit_status.mask` bit: set `enabled`. */
export const AUDIT_STATUS_ENABLED = 0x1;
/** `enabled` value of a locked configuration (`auditctl -e 2`): no rule can change. */
export const AUDIT_LOCKED = 2;

/** What `AUDIT_GET` answered. */
export interface AuditStatus {
  /** 0 off, 1 on, 2 locked. */
  enabled: number;
  /** The pid of the registered audit daemon; 0: none. */
  pid: number;
  /** Records the kernel dropped since boot. */
  lost: number;
  /** Records queued for delivery now. */
  backlog: number;
  /** Most records queued before senders wait (0: no limit). */
  backlogLimit: number;
}

/** Decodes `struct audit_status` at `off`. */
export function decodeStatus(view: DataView, off: number): AuditStatus {
  const u = (at: number) => view.getUint32(off + at, true);
  return {
    enabled: u(AUDIT_STATUS.enabled),
    pid: u(AUDIT_STATUS.pid),
    lost: u(AUDIT_STATUS.lost),
    backlog: u(AUDIT_STATUS.backlog),
    backlogLimit: u(AUDIT_STATUS.backlogLimit),
  };
}

/** An `AUDIT_SET` payload that sets `enabled` only. */
export function encodeSetEnabled(enabled: number): Uint8Array {
  const b = new Uint8Array(AUDIT_STATUS.size);
  const v = new DataView(b.buffer);
  v.setUint32(AUDIT_STATUS.mask, AUDIT_STATUS_ENABLED, true);
  v.setUint32(AUDIT_STATUS.enabled, enabled, true);
  return b;
}

/** `struct audit_rule_data` layout (64 syscall-mask words, 64 fields). */
export const AUDIT_RULE = {
  maxFields: 64,
  flags: 0,
  action: 4,
  fieldCount: 8,
  mask: 12,
  fields: 12 + 64 * 4,
  values: 12 + 2 * 64 * 4,
  fieldflags: 12 + 3 * 64 * 4,
  buflen: 12 + 4 * 64 * 4,
  /** Size without the string buffer. */
  size: 12 + 4 * 64 * 4 + 4,
} as const;

/** Rule list, action, field ids and the equality operator. */
export const AUDIT_RULE_VALUES = {
  FILTER_EXIT: 0x04,
  ALWAYS: 2,
  FIELD_ARCH: 11,
  FIELD_SESSIONID: 25,
  FIELD_SUCCESS: 104,
  FIELD_FILTERKEY: 210,
  OP_EQUAL: 0x40000000,
} as const;

/** Per architecture: the audit arch id and the numbers of `execve` and `execveat`. */
export const EXEC_SYSCALLS: Readonly<
  Record<string, { arch: number; execve: number; execveat: number }>
> = {
  x86_64: { arch: 0xc000003e, execve: 59, execveat: 322 },
  aarch64: { arch: 0xc00000b7, execve: 221, execveat: 281 },
};

/** The key every rule proctree installs starts with. */
export const KEY_PREFIX = "proctree:";

/** What proctree encodes in its rule's key: who installed it, and what it changed. */
export interface RuleKey {
  /** The pid of the proctree that installed the rule. */
  pid: number;
  /** That process's start time (ticks after boot): a reused pid is not it. */
  startTicks: number;
  /** It switched auditing on (`enabled` 0 → 1): whoever removes the rule last restores 0. */
  enabled: boolean;
}

/** `proctree:PID:START[:e]`. */
export function formatKey(k: RuleKey): string {
  return `${KEY_PREFIX}${k.pid}:${k.startTicks}${k.enabled ? ":e" : ""}`;
}

/** The parts of a proctree key; null for any other key. */
export function parseKey(key: string): RuleKey | null {
  const m = /^proctree:(\d+):(\d+)(:e)?$/.exec(key);
  return m ? { pid: Number(m[1]), startTicks: Number(m[2]), enabled: m[3] !== undefined } : null;
}

/** A rule: the fields proctree sets or looks at. */
export interface ExecRule {
  /** The audit arch id of the syscall numbers. */
  arch: number;
  /** Syscall numbers the rule applies to. */
  syscalls: number[];
  /** Only this audit session (`run`'s child); undefined: every process. */
  sessionId?: number;
  /** The rule's key. */
  key: string;
}

/**
 * The smallest rule that yields an `EXECVE` record per successful `execve`/`execveat`:
 * exit list, always, this arch, success only, the key (and the session, for `run`).
 */
export function encodeRule(rule: ExecRule): Uint8Array {
  const key = new TextEncoder().encode(rule.key);
  const b = new Uint8Array(AUDIT_RULE.size + key.length);
  const v = new DataView(b.buffer);
  const R = AUDIT_RULE_VALUES;
  v.setUint32(AUDIT_RULE.flags, R.FILTER_EXIT, true);
  v.setUint32(AUDIT_RULE.action, R.ALWAYS, true);
  for (const nr of rule.syscalls) {
    const at = AUDIT_RULE.mask + (nr >> 5) * 4;
    v.setUint32(at, (v.getUint32(at, true) | (1 << (nr & 31))) >>> 0, true);
  }
  const fields: [number, number][] = [[R.FIELD_ARCH, rule.arch], [R.FIELD_SUCCESS, 1]];
  if (rule.sessionId !== undefined) fields.push([R.FIELD_SESSIONID, rule.sessionId]);
  fields.push([R.FIELD_FILTERKEY, key.length]);
  fields.forEach(([field, value], i) => {
    v.setUint32(AUDIT_RULE.fields + i * 4, field, true);
    v.setUint32(AUDIT_RULE.values + i * 4, value >>> 0, true);
    v.setUint32(AUDIT_RULE.fieldflags + i * 4, R.OP_EQUAL, true);
  });
  v.setUint32(AUDIT_RULE.fieldCount, fields.length, true);
  v.setUint32(AUDIT_RULE.buflen, key.length, true);
  b.set(key, AUDIT_RULE.size);
  return b;
}

/** The key of a listed rule (`AUDIT_LIST_RULES` answer at `off`, `len` bytes); null: none. */
export function ruleKey(view: DataView, off: number, len: number): string | null {
  if (len < AUDIT_RULE.size) return null;
  const count = Math.min(view.getUint32(off + AUDIT_RULE.fieldCount, true), AUDIT_RULE.maxFields);
  let strAt = off + AUDIT_RULE.size;
  const end = off + len;
  for (let i = 0; i < count; i++) {
    const field = view.getUint32(off + AUDIT_RULE.fields + i * 4, true);
    const value = view.getUint32(off + AUDIT_RULE.values + i * 4, true);
    if (!STRING_FIELDS.has(field)) continue;
    if (strAt + value > end) return null;
    if (field === AUDIT_RULE_VALUES.FIELD_FILTERKEY) {
      return decodeBytes(new Uint8Array(view.buffer, view.byteOffset + strAt, value));
    }
    strAt += value;
  }
  return null;
}

/**
 * Fields whose value is a length into the string buffer (`audit_unpack_string` in
 * `kernel/auditfilter.c`): the LSM labels, watch, dir, filterkey, exe.
 */
const STRING_FIELDS = new Set([13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 105, 107, 112, 210]);

/** One record's header: `audit(SECONDS.MILLIS:SERIAL): `. */
export interface RecordHeader {
  /** Wall time of the event (the syscall's entry; coarse: a clock tick), in ms. */
  timeMs: number;
  /** The event's serial: every record of one event shares it. */
  serial: number;
  /** Where the fields start. */
  bodyAt: number;
}

/** Parses the header of a record's text; null when it has none. */
export function parseHeader(text: string): RecordHeader | null {
  const m = /^audit\((\d+)\.(\d{3}):(\d+)\): ?/.exec(text);
  if (!m) return null;
  return {
    timeMs: Number(m[1]) * 1000 + Number(m[2]),
    serial: Number(m[3]),
    bodyAt: m[0].length,
  };
}

/**
 * A record's `key=value` fields, values as written (quotes kept). Values never contain
 * spaces: the kernel hex-encodes any string with a space or a control byte.
 */
export function parseFields(text: string, from: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const token of text.slice(from).split(" ")) {
    const eq = token.indexOf("=");
    if (eq > 0) out.set(token.slice(0, eq), token.slice(eq + 1));
  }
  return out;
}

const HEX = /^[0-9A-F]*$/;

/**
 * The bytes of an untrusted string: `"…"` → its characters, hex → its bytes; null for
 * `(null)` or anything else.
 */
export function untrustedBytes(value: string): Uint8Array | null {
  if (value.length >= 2 && value[0] === '"' && value[value.length - 1] === '"') {
    const b = new Uint8Array(value.length - 2);
    for (let i = 1; i < value.length - 1; i++) b[i - 1] = value.charCodeAt(i) & 0xff;
    return b;
  }
  if (value.length % 2 !== 0 || !HEX.test(value)) return null;
  const b = new Uint8Array(value.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(value.slice(2 * i, 2 * i + 2), 16);
  return b;
}

/** An untrusted string decoded as `text.ts` decodes `/proc` (lossless); null when unreadable. */
export function untrustedString(value: string | undefined): string | null {
  if (value === undefined) return null;
  const b = untrustedBytes(value);
  return b === null ? null : decodeBytes(b);
}

/**
 * argv from the EXECVE records of one event (their fields, in order): `argc`, then `aN`,
 * or `aN_len` and the chunks `aN[k]`. Null when anything is missing or unreadable (the
 * kernel writes `(null)` for an argument it could not copy): never a partial argv.
 */
export function decodeExecve(records: readonly Map<string, string>[]): string[] | null {
  const argcText = records[0]?.get("argc");
  if (argcText === undefined || !/^\d+$/.test(argcText)) return null;
  const argc = Number(argcText);
  const all = new Map<string, string>();
  for (const r of records) for (const [k, v] of r) all.set(k, v);
  const out: string[] = [];
  for (let i = 0; i < argc; i++) {
    const whole = all.get(`a${i}`);
    if (whole !== undefined) {
      const b = untrustedBytes(whole);
      if (b === null) return null;
      out.push(decodeBytes(b));
      continue;
    }
    const lenText = all.get(`a${i}_len`);
    if (lenText === undefined) return null;
    const parts: Uint8Array[] = [];
    let total = 0, written = 0;
    for (let k = 0;; k++) {
      const chunk = all.get(`a${i}[${k}]`);
      if (chunk === undefined) break;
      const b = untrustedBytes(chunk);
      if (b === null) return null;
      parts.push(b);
      total += b.length;
      written += chunk[0] === '"' ? chunk.length - 2 : chunk.length;
    }
    // `aN_len` counts what is written: bytes when quoted, hex digits when encoded.
    if (written !== Number(lenText)) return null;
    const joined = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      joined.set(p, at);
      at += p.length;
    }
    out.push(decodeBytes(joined));
  }
  return out;
}
