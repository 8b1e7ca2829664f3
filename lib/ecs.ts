/**
 * `--format ecs`: a watch line as an Elastic Common Schema document (nested objects), so
 * Elasticsearch, OpenSearch and SIEMs built on ECS index it without a mapping of their own.
 * Field names and types follow the ECS reference of {@linkcode ECS_VERSION}; what ECS has no
 * field for (the chain, the login uid, a pod's uid, proctree's own counters) goes under
 * `proctree.*`. A fact proctree could not know is left out: ECS has no null.
 *
 * @module
 */

import type { WatchRecord } from "./record.ts";
import type { ProcNode } from "./tree.ts";

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

/** `event.type` per file action (ECS: creation, change, deletion for the `file` category). */
const FILE_EVENT_TYPE: Record<string, string> = {
  create: "creation",
  write: "change",
  attrib: "change",
  rename: "change",
  delete: "deletion",
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
]);

/** An ECS document: nested JSON objects. */
export type EcsDocument = Record<string, unknown>;
type Doc = EcsDocument;

/** Sets `value` at `path` (dotted) in `doc`, creating objects on the way; skips null/undefined. */
function put(doc: Doc, path: string, value: unknown): void {
  if (value === null || value === undefined) return;
  const keys = path.split(".");
  let o = doc;
  for (let i = 0; i < keys.length - 1; i++) o = (o[keys[i]] ??= {}) as Doc;
  o[keys[keys.length - 1]] = value;
}

/**
 * The ECS document for one watch line. `node`: the process the line is about (its uid
 * fills `process.user.id` on lines that carry only the user name); `hostname` fills
 * `host.hostname`.
 */
export function toEcs(rec: WatchRecord, node: ProcNode | null, hostname: string): EcsDocument {
  const doc: Doc = { "@timestamp": rec.time };
  put(doc, "ecs.version", ECS_VERSION);
  const isFile = rec.event === "file";
  const type = isFile ? FILE_EVENT_TYPE[rec.action ?? ""] : EVENT_TYPE[rec.event];
  put(doc, "event.kind", rec.event === "stats" ? "metric" : "event");
  if (type !== undefined) put(doc, "event.category", [isFile ? "file" : "process"]);
  put(doc, "event.type", [type ?? "info"]);
  put(doc, "event.action", isFile ? `file-${rec.action}` : rec.event);
  put(doc, "event.module", "proctree");
  put(doc, "event.dataset", isFile ? "proctree.file" : "proctree.process");
  if (isFile) putFile(doc, rec);
  if (rec.duration_ms !== undefined && rec.duration_ms !== null) {
    put(doc, "event.duration", Math.round(rec.duration_ms * 1e6)); // ns
  }
  put(doc, "host.hostname", hostname);
  put(doc, "process.pid", rec.pid);
  put(doc, "process.thread.id", rec.tid);
  put(doc, "process.entity_id", rec.id);
  put(doc, "process.name", rec.comm);
  put(doc, "process.executable", rec.exe);
  if (rec.argv) {
    put(doc, "process.args", rec.argv);
    put(doc, "process.args_count", rec.argv.length);
  }
  put(doc, "process.working_directory", rec.cwd);
  put(doc, "process.start", rec.start_time);
  if (rec.event === "exit" && rec.tid === undefined) put(doc, "process.end", rec.time);
  put(doc, "process.exit_code", rec.exit_code);
  put(doc, "process.parent.pid", rec.ppid);
  put(doc, "process.parent.entity_id", rec.parent_id);
  // ECS keeps user ids as keyword strings.
  const uid = rec.uid !== undefined ? rec.uid : rec.user !== undefined ? node?.uid ?? null : null;
  if (uid !== null) {
    put(doc, "process.user.id", String(uid));
    put(doc, "user.id", String(uid));
  }
  put(doc, "process.user.name", rec.user);
  put(doc, "user.name", rec.user);
  put(doc, "container.id", rec.container_id);
  for (const [k, v] of Object.entries(rec)) {
    if (!MAPPED.has(k)) put(doc, `proctree.${k}`, v);
  }
  return doc;
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
  put(doc, "file.type", rec.dir ? "dir" : "file");
  if (rec.to !== undefined) put(doc, "proctree.original_path", rec.path);
}
