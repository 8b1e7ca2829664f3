/**
 * `--format ecs`: a watch line as an Elastic Common Schema document (nested objects), so
 * Elasticsearch, OpenSearch and SIEMs built on ECS index it without a mapping of their own.
 * Field names and types follow the ECS reference of {@linkcode ECS_VERSION}; what ECS has no
 * field for (the chain, the login uid, a pod's uid, proctree's own counters) goes under
 * `proctree.*`. A fact proctree could not know is left out: ECS has no null.
 *
 * @module
 */

import type { WatchRecord } from "../record/record.ts";
import type { ProcNode } from "../tree/tree.ts";
import { SIGNAL_NAMES } from "../event/wait_status.ts";

/** The ECS version whose field reference this mapping follows. */
export const ECS_VERSION = "8.11.0";

/** `event.type` per proctree event (ECS allows start, end, change, info for processes). */
const EVENT_TYPE: Record<string, string> = {
  fork: "start",
  exec: "start",
  exit: "end",
  comm: "change",
  uid: "change",
  gid: "change",
  sid: "change",
  ptrace: "change",
  coredump: "info",
};

/** `event.action` where Elastic's own agents name the event otherwise than proctree does. */
const EVENT_ACTION: Record<string, string> = {
  uid: "uid_change",
  gid: "gid_change",
  sid: "session_id_change",
};

/** `event.type` per file action (ECS: creation, change, deletion for the `file` category). */
const FILE_EVENT_TYPE: Record<string, string> = {
  create: "creation",
  write: "change",
  attrib: "change",
  rename: "change",
  delete: "deletion",
  found: "info", // an entry of a directory moved in, as found when the move was read
};

/** Keys of a watch line that the mapping places itself; any other goes under `proctree`. */
const MAPPED = new Set([
  "event",
  "time",
  "pid",
  "tid",
  "ppid",
  "comm",
  "argv",
  "exe",
  "cwd",
  "uid",
  "user",
  "exit_code",
  "id",
  "parent_id",
  "start_time",
  "duration_ms",
  "container_id",
  "action",
  "path",
  "to",
  "dir",
  "real",
  "effective",
  "family",
  "protocol",
  "address",
  "port",
  "local_address",
  "local_port",
  "result",
]);

/** The lines of `--net`. */
const NET_EVENTS = new Set(["connect", "connect_result", "accept", "bind"]);

/** An ECS document: nested JSON objects. */
export type EcsDocument = Record<string, unknown>;
type Doc = EcsDocument;

/**
 * What ECS's `host.*` says of the machine: read once at start (`hostFacts()` in
 * `ffi/procfs.ts`). A fact that could not be read is null and left out.
 */
export interface EcsHost {
  /** `host.hostname` and `host.name`. */
  hostname: string;
  /** `host.id`: the machine id (`/etc/machine-id`). */
  id: string | null;
  /** `host.architecture` (`x86_64`, `aarch64`). */
  architecture: string | null;
  /** `host.os.kernel`: the kernel release. */
  kernel: string | null;
  /** `host.os.*` from `/etc/os-release`. */
  os: OsRelease | null;
}

/** The fields of `/etc/os-release` that ECS's `host.os` has. */
export interface OsRelease {
  /** `NAME`: `Debian GNU/Linux`. */
  name: string | null;
  /** `VERSION_ID`: `12`. */
  version: string | null;
  /** `ID`: `debian` (ECS `host.os.platform`). */
  platform: string | null;
  /** `ID_LIKE`'s first word, else `ID` (ECS `host.os.family`). */
  family: string | null;
  /** `PRETTY_NAME` (ECS `host.os.full`). */
  full: string | null;
}

/** Parses `/etc/os-release` (shell-style `KEY=value` lines, values optionally quoted). */
export function parseOsRelease(text: string): OsRelease {
  const v = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let val = m[2];
    if (/^(["']).*\1$/.test(val)) val = val.slice(1, -1).replace(/\\(.)/g, "$1");
    v.set(m[1], val);
  }
  const get = (k: string) => v.get(k) || null;
  return {
    name: get("NAME"),
    version: get("VERSION_ID"),
    platform: get("ID"),
    family: get("ID_LIKE")?.split(/\s+/)[0] ?? get("ID"),
    full: get("PRETTY_NAME"),
  };
}

/** Sets `value` at `path` (dotted) in `doc`, creating objects on the way; skips null/undefined. */
function put(doc: Doc, path: string, value: unknown): void {
  if (value === null || value === undefined) return;
  const keys = path.split(".");
  let o = doc;
  for (let i = 0; i < keys.length - 1; i++) o = (o[keys[i]] ??= {}) as Doc;
  o[keys[keys.length - 1]] = value;
}

/** The last path component: what ECS and Elastic's agents call a process's name. */
function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * `process.name`: the executable's name, as Elastic's agents give it (`netcat.traditional`,
 * where the kernel's comm keeps 15 bytes); the comm when the executable is not known.
 */
function processName(exe: string | null | undefined, comm: string | null | undefined) {
  return exe ? baseName(exe) : comm;
}

/** `process.args`, `args_count` and `command_line` (the arguments joined by spaces). */
function putArgs(doc: Doc, at: string, argv: readonly string[] | null | undefined): void {
  if (!argv) return;
  put(doc, `${at}.args`, argv);
  put(doc, `${at}.args_count`, argv.length);
  put(doc, `${at}.command_line`, argv.join(" "));
}

/**
 * The ECS document for one watch line. `node`: the process the line is about (fills what
 * the line leaves out: the uid, the executable and arguments of a fork or exit); `parent`:
 * its current parent (pid `ppid`), whose name, executable and arguments fill
 * `process.parent.*`; `host`: the machine (a bare hostname string is still accepted).
 */
export function toEcs(
  rec: WatchRecord,
  node: ProcNode | null,
  host: EcsHost | string,
  parent: ProcNode | null = null,
): EcsDocument {
  const doc: Doc = { "@timestamp": rec.time };
  put(doc, "ecs.version", ECS_VERSION);
  putEvent(doc, rec);
  if (rec.event === "file") putFile(doc, rec);
  if (NET_EVENTS.has(rec.event)) putNet(doc, rec);
  putHost(doc, typeof host === "string" ? hostOnly(host) : host);
  putProcess(doc, rec, node);
  putParent(doc, rec, parent);
  // ECS keeps user ids as keyword strings.
  const uid = rec.uid !== undefined ? rec.uid : rec.user !== undefined ? node?.uid ?? null : null;
  if (uid !== null) {
    put(doc, "process.user.id", String(uid));
    put(doc, "user.id", String(uid));
  }
  put(doc, "process.user.name", rec.user);
  put(doc, "user.name", rec.user);
  putIdChange(doc, rec);
  put(doc, "container.id", rec.container_id);
  for (const [k, v] of Object.entries(rec)) {
    if (!MAPPED.has(k)) put(doc, `proctree.${k}`, v);
  }
  return doc;
}

/** True for a line about one thread of a process (`--threads`): its start or end is not the process's. */
function isThreadLine(rec: WatchRecord): boolean {
  return rec.tid !== undefined && (rec.event === "fork" || rec.event === "exit");
}

function putEvent(doc: Doc, rec: WatchRecord): void {
  const isFile = rec.event === "file";
  if (NET_EVENTS.has(rec.event)) return putNetEvent(doc, rec);
  const thread = isThreadLine(rec);
  const type = isFile
    ? FILE_EVENT_TYPE[rec.action ?? ""]
    : thread
    ? "info"
    : EVENT_TYPE[rec.event] ?? "info";
  put(doc, "event.kind", rec.event === "stats" ? "metric" : "event");
  // proctree's own lines (stats, lost, resync, …) are about the host's process events.
  put(doc, "event.category", [isFile ? "file" : rec.event === "stats" ? "host" : "process"]);
  put(doc, "event.type", [type ?? "info"]);
  put(
    doc,
    "event.action",
    isFile
      ? `file-${rec.action}`
      : thread
      ? (rec.event === "fork" ? "thread_start" : "thread_end")
      : EVENT_ACTION[rec.event] ?? rec.event,
  );
  put(doc, "event.module", "proctree");
  put(doc, "event.dataset", isFile ? "proctree.file" : "proctree.process");
  if (rec.duration_ms !== undefined && rec.duration_ms !== null) {
    put(doc, "event.duration", Math.round(rec.duration_ms * 1e6)); // ns
  }
}

/** `event.*` of a connection: a started connection, or an error; a bind is information. */
function putNetEvent(doc: Doc, rec: WatchRecord): void {
  const ok = rec.result === "ok" || rec.result === "in_progress";
  put(doc, "event.kind", "event");
  put(doc, "event.category", ["network"]);
  put(doc, "event.type", rec.event === "bind" ? ["info"] : ["connection", ok ? "start" : "error"]);
  put(doc, "event.action", `network-${rec.event}`);
  put(doc, "event.outcome", rec.result === "ok" ? "success" : ok ? "unknown" : "failure");
  put(doc, "event.module", "proctree");
  put(doc, "event.dataset", "proctree.network");
}

/**
 * `source.*`, `destination.*` and `network.*` of a connection: a connect goes from the local
 * address to the peer (egress), an accept from the peer to the local one (ingress), a bind
 * names the local one as `source`. A unix socket's path is `proctree.path`.
 */
function putNet(doc: Doc, rec: WatchRecord): void {
  put(doc, "network.transport", rec.protocol);
  if (rec.family === "unix") {
    put(doc, "proctree.path", rec.path);
    return;
  }
  put(doc, "network.type", rec.family === "inet6" ? "ipv6" : "ipv4");
  const peer = { ip: rec.address, port: rec.port };
  const local = { ip: rec.local_address, port: rec.local_port };
  const [from, to] = rec.event === "connect" || rec.event === "connect_result"
    ? [local, peer]
    : rec.event === "accept"
    ? [peer, local]
    : [peer, { ip: undefined, port: undefined }];
  put(doc, "source.ip", from.ip);
  put(doc, "source.port", from.port);
  put(doc, "destination.ip", to.ip);
  put(doc, "destination.port", to.port);
  if (rec.event !== "bind") {
    put(doc, "network.direction", rec.event === "accept" ? "ingress" : "egress");
  }
  put(doc, "proctree.result", rec.result);
  if (rec.probe) put(doc, "proctree.probe", true);
}

function hostOnly(hostname: string): EcsHost {
  return { hostname, id: null, architecture: null, kernel: null, os: null };
}

function putHost(doc: Doc, h: EcsHost): void {
  put(doc, "host.hostname", h.hostname || null);
  put(doc, "host.name", h.hostname || null);
  put(doc, "host.id", h.id);
  put(doc, "host.architecture", h.architecture);
  put(doc, "host.os.type", "linux");
  put(doc, "host.os.kernel", h.kernel);
  put(doc, "host.os.name", h.os?.name);
  put(doc, "host.os.version", h.os?.version);
  put(doc, "host.os.platform", h.os?.platform);
  put(doc, "host.os.family", h.os?.family);
  put(doc, "host.os.full", h.os?.full);
}

function putProcess(doc: Doc, rec: WatchRecord, node: ProcNode | null): void {
  const exe = rec.exe !== undefined ? rec.exe : node?.exe;
  put(doc, "process.pid", rec.pid);
  put(doc, "process.thread.id", rec.tid);
  put(doc, "process.entity_id", rec.id);
  put(doc, "process.name", processName(exe, rec.comm));
  put(doc, "process.executable", exe);
  putArgs(doc, "process", rec.argv !== undefined ? rec.argv : node?.argv);
  put(doc, "process.working_directory", rec.cwd);
  put(doc, "process.start", rec.start_time);
  if (rec.event === "exit" && !isThreadLine(rec)) {
    put(doc, "process.end", rec.time);
    // ECS has no field for a signal: a killed process gets the shell's 128 + signal number
    // (the name stays in proctree.signal).
    const signo = rec.signal ? SIGNAL_NAMES.indexOf(rec.signal) : -1;
    put(doc, "process.exit_code", signo > 0 ? 128 + signo : rec.exit_code);
  }
  put(doc, "process.parent.pid", rec.ppid);
  put(doc, "process.parent.entity_id", rec.parent_id);
}

function putParent(doc: Doc, rec: WatchRecord, parent: ProcNode | null): void {
  if (!parent || parent.pid !== rec.ppid) return;
  put(doc, "process.parent.name", processName(parent.exe, parent.comm));
  put(doc, "process.parent.executable", parent.exe);
  putArgs(doc, "process.parent", parent.argv);
}

/** A uid or gid change: ECS's user and group fields instead of proctree's `real`/`effective`. */
function putIdChange(doc: Doc, rec: WatchRecord): void {
  if (rec.event !== "uid" && rec.event !== "gid") return;
  const [real, effective] = rec.event === "uid"
    ? ["process.real_user.id", "process.user.id"]
    : ["process.real_group.id", "process.group.id"];
  if (rec.real !== undefined) put(doc, real, String(rec.real));
  if (rec.effective !== undefined) put(doc, effective, String(rec.effective));
  if (rec.event === "uid" && rec.effective !== undefined) {
    put(doc, "user.id", String(rec.effective));
  }
}

/**
 * `file.*` of a file change: the path it has after the change (a rename's new one; the old
 * one under `proctree.original_path`), its name, directory and type.
 */
function putFile(doc: Doc, rec: WatchRecord): void {
  const path = rec.to ?? rec.path;
  if (path === undefined) return;
  const slash = path.lastIndexOf("/");
  put(doc, "file.path", path);
  put(doc, "file.name", path.slice(slash + 1));
  put(doc, "file.directory", slash > 0 ? path.slice(0, slash) : "/");
  // fanotify's names do not say what a non-directory is (file, symlink, socket): left out.
  if (rec.dir) put(doc, "file.type", "dir");
  if (rec.to !== undefined) put(doc, "proctree.original_path", rec.path);
  if (rec.merged) put(doc, "proctree.merged", true);
}
