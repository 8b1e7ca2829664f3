/**
 * The audit source (`--argv audit`): a rule of proctree's own that makes the kernel record
 * every successful `execve`/`execveat` with its exact argv, and a socket on the read-only
 * multicast group that receives those records. No audit daemon is needed.
 *
 * - The rule (`lib/source/audit/wire.ts`: exit list, arch, success, key `proctree:PID:START[:e]`)
 *   is added through the audit netlink socket and removed, exactly that rule, by
 *   {@linkcode AuditSource.close}; rules of a proctree that died (its pid gone or reused) are
 *   removed at the next start. Other rules are never touched.
 * - Auditing off (`enabled 0`) is switched on and, when the last proctree rule goes, off
 *   again (the `:e` in a key says "auditing was off before proctree"); locked (`enabled 2`)
 *   is refused.
 * - The kernel's `lost` counter is read after records arrive: a loss, and an overrun of
 *   this socket, are reported, and `lib/source/audit/join.ts` pairs nothing for a while.
 *
 * Needs `CAP_AUDIT_CONTROL` (rules) and `CAP_AUDIT_READ` (the multicast group).
 *
 * @module
 */

import { SourceUnavailable } from "../../lib/pipeline/unavailable.ts";
import {
  Errno,
  errno,
  errnoName,
  libc,
  LibcError,
  netlinkAddress,
  POLL,
  POLLFD,
  setRcvbuf,
  SOCK,
} from "../libc.ts";
import { procfs } from "../procfs.ts";
import { PF_EXITING } from "../../lib/tree/proc_parse.ts";
import type { BatchSink, Source } from "../../lib/pipeline/loop.ts";
import { NLMSG, NLMSG_TYPE } from "../../lib/netlink.ts";
import type { AuditLossReason } from "../../lib/source/audit/stage.ts";
import {
  AUDIT_LOCKED,
  AUDIT_MSG,
  AUDIT_NLGRP_READLOG,
  AUDIT_STATUS,
  type AuditStatus,
  decodeStatus,
  encodeRule,
  encodeSetEnabled,
  EXEC_SYSCALLS,
  formatKey,
  NETLINK_AUDIT,
  parseKey,
  ruleKey,
} from "../../lib/source/audit/wire.ts";
import { AuditAssembler } from "../../lib/source/audit/records.ts";
import { AuditJoin } from "../../lib/source/audit/join.ts";

const { AF_NETLINK, MSG_DONTWAIT } = SOCK;
const NLM_F = { REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, DUMP: 0x300 } as const;

/** Receive buffer of the record socket: room for a burst of records while the loop is busy. */
export const AUDIT_RCVBUF_BYTES = 32 * 1024 * 1024;
/** Longest wait for the kernel's answer to a request, in ms. */
const REPLY_TIMEOUT_MS = 2_000;
/** Least time between two reads of the kernel's `lost` counter while records arrive, in ms. */
export const LOST_CHECK_MS = 20;

/** The record types the assembler reads. */
const RECORDS_READ: ReadonlySet<number> = new Set([
  AUDIT_MSG.SYSCALL,
  AUDIT_MSG.EXECVE,
  AUDIT_MSG.CWD,
  AUDIT_MSG.EOE,
]);

/** Why `--argv audit` cannot start: the errno name and a sentence for the user. */
export class AuditUnavailable extends SourceUnavailable {
  /** `code`: the errno name, or `locked`; `message`: what it means. */
  constructor(code: string, message: string) {
    super("--argv audit", code, message);
  }
}

/** One request/answer channel to the kernel's audit configuration. */
class AuditControl {
  readonly fd: number;
  #seq = 1;
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #pollfd = new Uint8Array(POLLFD.size);

  constructor() {
    const fd = libc().socket(AF_NETLINK, SOCK.RAW | SOCK.CLOEXEC, NETLINK_AUDIT);
    if (fd < 0) {
      const e = errnoName(errno());
      throw new AuditUnavailable(e, `the kernel has no audit netlink socket (${e})`);
    }
    this.fd = fd;
    const v = new DataView(this.#pollfd.buffer);
    v.setInt32(POLLFD.fd, fd, true);
    v.setInt16(POLLFD.events, POLL.IN, true);
  }

  /**
   * Sends one request; calls `onReply` for each answer message (type, offset, length) until
   * the acknowledgement — and, when `onReply` is given, the answer or the end of a dump:
   * the kernel may send the acknowledgement first. Throws {@linkcode LibcError} with the
   * errno name the kernel answered.
   */
  request(
    type: number,
    payload: Uint8Array,
    flags: number,
    onReply?: (type: number, off: number, len: number) => void,
  ): void {
    let acked = false, answered = onReply === undefined;
    const c = libc();
    const seq = this.#seq++;
    const msg = new Uint8Array(NLMSG.size + payload.length);
    const v = new DataView(msg.buffer);
    v.setUint32(NLMSG.len, msg.length, true);
    v.setUint16(NLMSG.type, type, true);
    v.setUint16(NLMSG.flags, NLM_F.REQUEST | flags, true);
    v.setUint32(NLMSG.seq, seq, true);
    msg.set(payload, NLMSG.size);
    if (Number(c.send(this.fd, msg, BigInt(msg.length), 0)) < 0) {
      throw new LibcError(`audit request ${type}`, errno());
    }
    const until = performance.now() + REPLY_TIMEOUT_MS;
    for (;;) {
      const left = Math.ceil(until - performance.now());
      if (left <= 0 || c.poll(this.#pollfd, 1n, left) <= 0) {
        throw new LibcError(`audit request ${type} (no answer)`, Errno.EIO);
      }
      const n = Number(c.recv(this.fd, this.#buf, BigInt(this.#buf.length), MSG_DONTWAIT));
      if (n < 0) {
        const e = errno();
        if (e === Errno.EAGAIN || e === Errno.EINTR) continue;
        throw new LibcError(`audit request ${type}`, e);
      }
      for (let at = 0; at + NLMSG.size <= n;) {
        const len = this.#view.getUint32(at + NLMSG.len, true);
        if (len < NLMSG.size || at + len > n) break;
        const t = this.#view.getUint16(at + NLMSG.type, true);
        const s = this.#view.getUint32(at + NLMSG.seq, true);
        if (s === seq) {
          if (t === NLMSG_TYPE.ERROR) {
            const code = -this.#view.getInt32(at + NLMSG.size, true);
            if (code !== 0) throw new LibcError(`audit request ${type}`, code);
            acked = true;
          } else if (t === NLMSG_TYPE.DONE) answered = true;
          else {
            onReply?.(t, at + NLMSG.size, len - NLMSG.size);
            if (!(flags & NLM_F.DUMP)) answered = true;
          }
        }
        at += (len + 3) & ~3;
      }
      if (acked && answered) return;
    }
  }

  status(): AuditStatus {
    let out: AuditStatus | null = null;
    this.request(AUDIT_MSG.GET, new Uint8Array(0), NLM_F.ACK, (t, off, len) => {
      if (t === AUDIT_MSG.GET && len >= AUDIT_STATUS.size) out = decodeStatus(this.#view, off);
    });
    if (out === null) throw new LibcError("audit status (no answer)", Errno.EIO);
    return out;
  }

  setEnabled(enabled: number): void {
    this.request(AUDIT_MSG.SET, encodeSetEnabled(enabled), NLM_F.ACK);
  }

  /** Every rule, as its key and its bytes (to delete exactly that rule). */
  rules(): { key: string | null; bytes: Uint8Array }[] {
    const out: { key: string | null; bytes: Uint8Array }[] = [];
    this.request(AUDIT_MSG.LIST_RULES, new Uint8Array(0), NLM_F.ACK | NLM_F.DUMP, (t, off, len) => {
      if (t !== AUDIT_MSG.LIST_RULES) return;
      out.push({ key: ruleKey(this.#view, off, len), bytes: this.#buf.slice(off, off + len) });
    });
    return out;
  }

  close(): void {
    libc().close(this.fd);
  }
}

/**
 * Whether the proctree that wrote `key` still runs: same pid, same start, and not ending —
 * a zombie, or one killed a moment ago and still tearing down (`PF_EXITING`), will never
 * take its rule down.
 */
function alive(pid: number, startTicks: number): boolean {
  const st = procfs.stat(pid);
  if (!st || st.startTicks !== startTicks) return false;
  return st.state !== "Z" && st.state !== "X" && (st.flags & PF_EXITING) === 0;
}

/** What changed on the host, for the message at start. */
export interface AuditSetup {
  /** An audit daemon is registered: the rule's records reach the host's audit log too. */
  daemonPid: number;
  /** Auditing was off and proctree switched it on (off again at the end). */
  enabledByProctree: boolean;
  /** Rules of proctree processes that are gone, removed at start. */
  staleRulesRemoved: number;
}

/** Options of {@linkcode AuditSource.open}. */
export interface AuditSourceOptions {
  /** Records may have been lost (`reason`, and a count when the kernel knows it). */
  onLost: (reason: AuditLossReason, count: number | null) => void;
  /** CLOCK_MONOTONIC now, in ms. */
  nowMs: () => number;
}

/** The audit rule and record socket, as a source of the read loop; see the module doc. */
export class AuditSource implements Source {
  readonly name = "audit";
  readonly fd: number;
  readonly pending = false;
  /** Pairs records with exec events; the processor asks it. */
  readonly join: AuditJoin = new AuditJoin();
  /** Gathers records into execs. */
  readonly assembler: AuditAssembler;
  /** What was changed at start. */
  readonly setup: AuditSetup;
  #control: AuditControl;
  #rule: Uint8Array;
  #closed = false;
  #lost: number;
  #checkedMs = -Infinity;
  #unchecked = false;
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #text = new TextDecoder();
  #o: AuditSourceOptions;

  private constructor(
    fd: number,
    control: AuditControl,
    rule: Uint8Array,
    setup: AuditSetup,
    lost: number,
    o: AuditSourceOptions,
  ) {
    this.fd = fd;
    this.#control = control;
    this.#rule = rule;
    this.setup = setup;
    this.#lost = lost;
    this.#o = o;
    const arch = EXEC_SYSCALLS[Deno.build.arch];
    this.assembler = new AuditAssembler([arch.execve, arch.execveat]);
  }

  /** Installs the rule and joins the record group; throws {@linkcode AuditUnavailable}. */
  static open(o: AuditSourceOptions): AuditSource {
    const arch = EXEC_SYSCALLS[Deno.build.arch];
    if (!arch) {
      throw new AuditUnavailable("ENOSYS", `no execve numbers known for ${Deno.build.arch}`);
    }
    const control = new AuditControl();
    let fd = -1;
    try {
      const status = explain(() => control.status());
      if (status.enabled === AUDIT_LOCKED) {
        throw new AuditUnavailable(
          "locked",
          "the audit configuration is locked (enabled 2): no rule can be added until reboot",
        );
      }
      const { removed, enabledBefore } = removeStale(control);
      const offBefore = status.enabled === 0 || enabledBefore;
      fd = joinGroup();
      if (status.enabled === 0) explain(() => control.setEnabled(1));
      const me = procfs.stat(Deno.pid);
      const key = formatKey({ pid: Deno.pid, startTicks: me?.startTicks ?? 0, enabled: offBefore });
      const rule = encodeRule({
        arch: arch.arch,
        syscalls: [arch.execve, arch.execveat],
        key,
      });
      explain(() => control.request(AUDIT_MSG.ADD_RULE, rule, NLM_F.ACK));
      const setup = {
        daemonPid: status.pid,
        enabledByProctree: status.enabled === 0,
        staleRulesRemoved: removed,
      };
      return new AuditSource(fd, control, rule, setup, status.lost, o);
    } catch (e) {
      if (fd >= 0) libc().close(fd);
      control.close();
      throw e;
    }
  }

  /** Reads every queued record; appends nothing to the batch (the processor asks the join). */
  drain(_sink: BatchSink, _max: number): number {
    const c = libc();
    const nowMs = this.#o.nowMs();
    let got = 0;
    for (;;) {
      const n = Number(c.recv(this.fd, this.#buf, BigInt(this.#buf.length), MSG_DONTWAIT));
      if (n < 0) {
        const e = errno();
        if (e === Errno.EAGAIN || e === Errno.EINTR) break;
        if (e === Errno.ENOBUFS) {
          this.#lose(nowMs, "audit_overrun", null);
          continue;
        }
        throw new LibcError("recv(audit)", e);
      }
      if (n < NLMSG.size) continue;
      got++;
      this.#record(n, nowMs);
    }
    if (got > 0) this.#unchecked = true;
    if (this.#unchecked && nowMs - this.#checkedMs >= LOST_CHECK_MS) this.checkLost(nowMs);
    this.assembler.sweep(nowMs);
    return 0;
  }

  #record(n: number, nowMs: number): void {
    const len = Math.min(this.#view.getUint32(NLMSG.len, true), n);
    const type = this.#view.getUint16(NLMSG.type, true);
    // Most of an exec's records (PATH, PROCTITLE, …) are not needed: not even decoded.
    if (!RECORDS_READ.has(type)) return;
    const text = this.#text.decode(this.#buf.subarray(NLMSG.size, len));
    const rec = this.assembler.record(type, text.replace(/\0+$/, ""), nowMs);
    if (rec && !this.join.blind(nowMs)) this.join.add(rec, nowMs);
  }

  /** Reads the kernel's `lost` counter; a rise is a loss. */
  checkLost(nowMs: number): void {
    this.#checkedMs = nowMs;
    this.#unchecked = false;
    let lost: number;
    try {
      lost = this.#control.status().lost;
    } catch {
      return;
    }
    if (lost !== this.#lost) {
      const count = (lost - this.#lost) >>> 0;
      this.#lost = lost;
      this.#lose(nowMs, "audit_lost", count);
    }
  }

  #lose(nowMs: number, reason: AuditLossReason, count: number | null): void {
    this.assembler.clear();
    this.join.lost(nowMs);
    this.#o.onLost(reason, count);
  }

  /**
   * Removes the rule (and switches auditing off again when proctree switched it on and no
   * other proctree rule remains), then closes both sockets. Safe to call twice.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#control.request(AUDIT_MSG.DEL_RULE, this.#rule, NLM_F.ACK);
      const mine = parseKey(ruleKeyOf(this.#rule));
      const others = this.#control.rules().some((r) => r.key !== null && parseKey(r.key));
      if (mine?.enabled && !others) this.#control.setEnabled(0);
    } finally {
      libc().close(this.fd);
      this.#control.close();
    }
  }
}

function ruleKeyOf(rule: Uint8Array): string {
  return ruleKey(new DataView(rule.buffer), 0, rule.length) ?? "";
}

/**
 * Removes the rules of proctree processes that are gone; says whether any of them had
 * found auditing off (then it is switched off again when the last rule goes).
 */
function removeStale(control: AuditControl): { removed: number; enabledBefore: boolean } {
  let removed = 0, enabledBefore = false;
  for (const r of explain(() => control.rules())) {
    const k = r.key === null ? null : parseKey(r.key);
    if (!k) continue;
    if (k.enabled) enabledBefore = true;
    if (alive(k.pid, k.startTicks)) continue;
    explain(() => control.request(AUDIT_MSG.DEL_RULE, r.bytes, NLM_F.ACK));
    removed++;
  }
  return { removed, enabledBefore };
}

/** A socket on the record multicast group; throws {@linkcode AuditUnavailable}. */
function joinGroup(): number {
  const c = libc();
  const fd = c.socket(AF_NETLINK, SOCK.RAW | SOCK.NONBLOCK | SOCK.CLOEXEC, NETLINK_AUDIT);
  if (fd < 0) throw new AuditUnavailable(errnoName(errno()), "cannot open an audit socket");
  setRcvbuf(fd, AUDIT_RCVBUF_BYTES);
  const addr = netlinkAddress(1 << (AUDIT_NLGRP_READLOG - 1));
  if (c.bind(fd, addr, addr.length) !== 0) {
    const e = errno();
    c.close(fd);
    throw unavailable(new LibcError("bind(audit multicast)", e));
  }
  return fd;
}

/** Runs a request; turns a refusal into a sentence ({@linkcode AuditUnavailable}). */
function explain<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof LibcError ? unavailable(e) : e;
  }
}

function unavailable(e: LibcError): AuditUnavailable {
  switch (e.errno) {
    case Errno.EPERM:
      return new AuditUnavailable(
        "EPERM",
        "needs CAP_AUDIT_CONTROL and CAP_AUDIT_READ (EPERM)",
      );
    case Errno.ECONNREFUSED:
      return new AuditUnavailable(
        "ECONNREFUSED",
        "the audit subsystem is not reachable from this namespace (a container?) (ECONNREFUSED)",
      );
    default:
      return new AuditUnavailable(e.code, `audit: ${e.message}`);
  }
}
