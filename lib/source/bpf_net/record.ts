/**
 * Decodes the network source's records (layout: `program.ts`) into connection events:
 * which call, by whom, to or from where, and how it ended.
 *
 * Where an address comes from: the socket's own, as the kernel holds it after the call,
 * when the call succeeded (or a connect is in progress) and the socket has one; else the
 * address the caller passed (a refused connect leaves none on the socket). A local address
 * and port come only from the socket: null when it has none yet, never guessed.
 *
 * @module
 */

import { startTicksAt, u64 } from "../../bpf/fields.ts";
import { errnoName } from "../../errno.ts";
import { decodeBytes } from "../../text.ts";
import { NetRec, OUTCOME_NR, TCP_STATE, USER_ADDR_BYTES } from "./program.ts";

/** Address families (`linux/socket.h`). */
export const AF = { UNSPEC: 0, UNIX: 1, INET: 2, INET6: 10, NETLINK: 16 } as const;

/** What a record says, ready to print. */
export interface NetEvent {
  /** CLOCK_MONOTONIC ns of the call's return. */
  ktimeNs: number;
  /** The process that made the call. */
  pid: number;
  /** The thread that made it. */
  tid: number;
  /** The caller's start, in clock ticks since boot: who it was. */
  startTicks: number;
  /** The call; `connect_result`: how a connect that was in progress ended. */
  event: "connect" | "accept" | "bind" | "connect_result";
  /** The socket's address family. */
  family: "inet" | "inet6" | "unix";
  /** The transport, when the kernel says one. */
  protocol: "tcp" | "udp" | null;
  /** inet: the peer (connect, accept) or the local address (bind). */
  address: string | null;
  /** The port of {@linkcode NetEvent.address}. */
  port: number | null;
  /** unix: the path (abstract names begin with `@`); null when unnamed. */
  path: string | null;
  /** connect, accept: the socket's local address and port (null: it has none yet). */
  localAddress: string | null;
  /** See {@linkcode NetEvent.localAddress}. */
  localPort: number | null;
  /** `ok`, `in_progress`, or the errno name. */
  result: string;
  /**
   * A UDP connect whose socket let go of its peer (a connect to `AF_UNSPEC`) before the line
   * was printed: a route probe (glibc's `getaddrinfo` picks source addresses so), no traffic.
   */
  probe?: true;
  /** The socket (kernel address; 0n when not read): pairs a connect with its outcome. */
  sk: bigint;
  /**
   * A TCP connect in progress: how it had ended by the call's return (on loopback the
   * handshake is over by then), or null when it had not (its outcome comes later).
   */
  outcome?: string | null;
}

/** How a TCP connect in progress ended: the socket, when, and the result. */
export interface NetOutcome {
  /** Always `outcome`. */
  kind: "outcome";
  /** CLOCK_MONOTONIC ns of the socket's change of state. */
  ktimeNs: number;
  /** The socket (kernel address). */
  sk: bigint;
  /** `ok`, the errno name, or `closed` (closed by its owner before it connected). */
  result: string;
  /** The local address and port it connected from (null: none). */
  localAddress: string | null;
  /** See {@linkcode NetOutcome.localAddress}. */
  localPort: number | null;
}

/** A connect to `AF_UNSPEC`: a datagram socket let go of its peer (the resolver does). */
export interface NetDisconnect {
  /** Always `disconnect`. */
  kind: "disconnect";
  /** The process. */
  pid: number;
  /** The socket (kernel address; 0n when not read). */
  sk: bigint;
}

/** Why a well-formed record is not a line. */
export type NetSkip =
  /** Netlink and the other families proctree does not print. */
  | "other_family"
  /** A non-blocking accept with nothing to accept (`EAGAIN`). */
  | "accept_again";

/** The system call numbers of the records' architecture. */
export interface NetSyscalls {
  /** `connect(2)`. */
  connect: number;
  /** `accept(2)`. */
  accept: number;
  /** `accept4(2)`. */
  accept4: number;
  /** `bind(2)`. */
  bind: number;
}

const EINPROGRESS = 115;
const EAGAIN = 11;
const PROTOCOLS: Readonly<Record<number, "tcp" | "udp">> = { 6: "tcp", 17: "udp" };

/** An IPv4 address in network order, dotted. */
export function formatIpv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** An IPv6 address as RFC 5952 writes it (`::1`, `fe80::1`, `::ffff:127.0.0.1`). */
export function formatIpv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIpv4(b.subarray(12))}`;
  }
  let bestAt = -1, bestLen = 1; // a single zero group is not shortened
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) bestAt = i, bestLen = j - i;
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** A `sockaddr_un` path: abstract names (first byte NUL) as `@…`, exact bytes; null: unnamed. */
export function unixPath(sun: Uint8Array): string | null {
  if (sun.length === 0) return null;
  if (sun[0] === 0) return "@" + decodeBytes(sun.subarray(1));
  const nul = sun.indexOf(0);
  return decodeBytes(nul < 0 ? sun : sun.subarray(0, nul));
}

/** The address and port of a caller's `sockaddr_in`/`sockaddr_in6` of `len` bytes. */
function userInet(user: Uint8Array, family: number, len: number): [string | null, number | null] {
  const port = (user[2] << 8) | user[3];
  if (family === AF.INET && len >= 8) return [formatIpv4(user.subarray(4, 8)), port];
  if (family === AF.INET6 && len >= 24) return [formatIpv6(user.subarray(8, 24)), port];
  return [null, null];
}

/**
 * The event of `bytes`, a reason it is not printed, or null when the record is malformed
 * (shorter than its layout, or of a call the program does not keep).
 */
export function decodeNet(
  bytes: Uint8Array,
  calls: NetSyscalls,
): NetEvent | NetOutcome | NetDisconnect | NetSkip | null {
  if (bytes.length < NetRec.size) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nr = v.getUint32(NetRec.nr, true);
  if (nr === OUTCOME_NR) return decodeOutcome(bytes, v);
  const event = nr === calls.connect
    ? "connect"
    : nr === calls.bind
    ? "bind"
    : nr === calls.accept || nr === calls.accept4
    ? "accept"
    : null;
  if (!event) return null;
  const ret = Number(v.getBigInt64(NetRec.ret, true));
  if (event === "accept" && ret === -EAGAIN) return "accept_again";
  const sock = v.getUint32(NetRec.sockRead, true) === 1;
  const userLen = Math.min(v.getUint32(NetRec.userLen, true), USER_ADDR_BYTES);
  const userRead = v.getInt32(NetRec.userRead, true) === 0 && userLen >= 2;
  const user = bytes.subarray(NetRec.user, NetRec.user + userLen);
  const userFamily = userRead ? v.getUint16(NetRec.user, true) : null;
  if (event === "connect" && userFamily === AF.UNSPEC) {
    const sk = sock ? v.getBigUint64(NetRec.sk, true) : 0n;
    return { kind: "disconnect", pid: v.getUint32(NetRec.tgid, true), sk };
  }
  const familyNo = sock ? v.getUint16(NetRec.family, true) : userFamily;
  if (familyNo !== AF.INET && familyNo !== AF.INET6 && familyNo !== AF.UNIX) {
    return "other_family";
  }
  const result = ret >= 0 ? "ok" : ret === -EINPROGRESS ? "in_progress" : errnoName(-ret);
  const ev: NetEvent = {
    ktimeNs: u64(v, NetRec.ktimeNs),
    pid: v.getUint32(NetRec.tgid, true),
    tid: v.getUint32(NetRec.tid, true),
    startTicks: startTicksAt(v, NetRec.startBoottimeNs),
    event,
    family: familyNo === AF.UNIX ? "unix" : familyNo === AF.INET ? "inet" : "inet6",
    protocol: null,
    address: null,
    port: null,
    path: null,
    localAddress: null,
    localPort: null,
    result,
    sk: sock ? v.getBigUint64(NetRec.sk, true) : 0n,
  };
  if (familyNo === AF.UNIX) {
    // The caller's address: connect and bind name the path; accept, the peer's (if bound).
    if (userRead && userFamily === AF.UNIX) ev.path = unixPath(user.subarray(2));
    return ev;
  }
  if (sock) ev.protocol = PROTOCOLS[v.getUint16(NetRec.protocol, true)] ?? null;
  const six = familyNo === AF.INET6;
  const sockAddr = (v4: number, v6: number) =>
    six ? formatIpv6(bytes.subarray(v6, v6 + 16)) : formatIpv4(bytes.subarray(v4, v4 + 4));
  const localPort = sock ? v.getUint16(NetRec.localPort, true) : 0;
  const peerPort = sock ? v.getUint16(NetRec.peerPort, false) : 0;
  const done = result === "ok" || result === "in_progress";
  if (localPort !== 0) {
    ev.localAddress = sockAddr(NetRec.localV4, NetRec.localV6);
    ev.localPort = localPort;
  }
  if (event === "bind") {
    // The socket's, when bound (a port of 0 asked becomes the port given).
    [ev.address, ev.port] = done && localPort !== 0
      ? [ev.localAddress, ev.localPort]
      : userRead
      ? userInet(user, familyNo, userLen)
      : [null, null];
    ev.localAddress = ev.localPort = null;
  } else if (done && peerPort !== 0) {
    [ev.address, ev.port] = [sockAddr(NetRec.peerV4, NetRec.peerV6), peerPort];
  } else if (event === "connect" && userRead) {
    [ev.address, ev.port] = userInet(user, userFamily!, userLen);
  }
  if (result === "in_progress" && ev.protocol === "tcp" && ev.sk !== 0n) {
    const state = v.getUint32(NetRec.state, true);
    ev.outcome = state === TCP_STATE.SYN_SENT ? null : endResult(state, v);
  }
  return ev;
}

/** The result of a socket that left `SYN_SENT` for `state`. */
function endResult(state: number, v: DataView): string {
  if (state === TCP_STATE.ESTABLISHED) return "ok";
  const err = v.getUint32(NetRec.skErr, true);
  return err ? errnoName(err) : "closed";
}

function decodeOutcome(bytes: Uint8Array, v: DataView): NetOutcome {
  const localPort = v.getUint16(NetRec.localPort, true);
  const six = v.getUint16(NetRec.family, true) === AF.INET6;
  const local = six
    ? formatIpv6(bytes.subarray(NetRec.localV6, NetRec.localV6 + 16))
    : formatIpv4(bytes.subarray(NetRec.localV4, NetRec.localV4 + 4));
  return {
    kind: "outcome",
    ktimeNs: u64(v, NetRec.ktimeNs),
    sk: v.getBigUint64(NetRec.sk, true),
    result: endResult(v.getUint32(NetRec.state, true), v),
    localAddress: localPort ? local : null,
    localPort: localPort || null,
  };
}
