/**
 * proctree as a library: the Linux proc connector as async iterators, the wire decoder,
 * the process tree with its lineage queries, and the JSON line type of `proctree watch`.
 *
 * ```ts
 * import { watchEvents } from "./mod.ts";
 *
 * for await (const rec of watchEvents({ events: ["exec"] })) {
 *   console.log(rec.pid, rec.argv, rec.chain);
 * }
 * ```
 *
 * Run with `deno run --allow-ffi --allow-read script.ts`, as root or with `CAP_NET_ADMIN` (any
 * user of the host's namespaces where the kernel allows unprivileged proc-connector listeners).
 *
 * @module
 */

export {
  type ArgvMode,
  AuditUnavailable,
  BpfUnavailable,
  type EventKind,
  type ExecFactsMode,
  type ExecNameMode,
  FanotifyUnavailable,
  listen,
  type Listening,
  type ListenOptions,
  type LoopHooks,
  type ProcessorConfig,
  rawEvents,
  type RawEventsOptions,
  Session,
  watchEvents,
  type WatchOptions,
} from "./api.ts";
export {
  ConnectorError,
  type ConnectorOptions,
  type ConnectorStats,
  type DatagramSink,
  ProcConnector,
} from "./ffi/source/connector.ts";
export {
  DEFAULT_BACKLOG_BYTES,
  type ReaderCounters,
  ReaderThread,
} from "./ffi/source/connector_reader.ts";
export type { BacklogVisitor } from "./lib/event/backlog.ts";
export { WallClock } from "./lib/time.ts";
export { SourceUnavailable } from "./lib/pipeline/unavailable.ts";
export {
  type AckEvent,
  type CommEvent,
  type CoredumpEvent,
  type Decoded,
  decodeDatagram,
  type DecodeError,
  type EventBase,
  type EventName,
  type EventOf,
  type ExecEvent,
  type ExitEvent,
  type ForkEvent,
  type IdEvent,
  type ProcEvent,
  type PtraceEvent,
  type SidEvent,
  type UnknownEvent,
  WHAT,
} from "./lib/event/wire.ts";
export {
  EVENT_KINDS,
  type Field,
  type FieldType,
  KINDS,
  type KindSpec,
  type Layout,
  type Payloads,
} from "./lib/event/kinds.ts";
export {
  type BatchSink,
  EventLoop,
  type LoopHandlers,
  type Source,
  type Waiter,
  type WaitOutcome,
} from "./lib/pipeline/loop.ts";
export { Poller } from "./ffi/poller.ts";
export {
  EventProcessor,
  type ProcessFilter,
  type ProcessorCounters,
  type ProcessorOptions,
  type RecordSink,
} from "./lib/pipeline/processor.ts";
export { encodeEvent } from "./lib/event/encode.ts";
export {
  type ExecInfo,
  PidTree,
  type ProcessTree,
  type ProcFacts,
  type ProcNode,
  type ResyncResult,
  type SeedEntry,
  type TreeOptions,
  type TreeStats,
} from "./lib/tree/tree.ts";
export {
  chainObjects,
  formatChain,
  type RecordKind,
  toJsonLine,
  type WatchRecord,
} from "./lib/record/record.ts";
export type { ProcReader, StatInfo, StatusInfo } from "./lib/tree/proc_parse.ts";
export { decodeWaitStatus, type WaitStatus } from "./lib/event/wait_status.ts";
export { byComm, byExe, byName, byNode, byUser, type NodeMatcher } from "./lib/tree/lineage.ts";
export { Users } from "./lib/tree/users.ts";
export { hostUsers } from "./ffi/passwd.ts";
export {
  Audit,
  type AuditEntry,
  type AuditTotals,
  type FileSummary,
  type Image,
  netLine,
  type NetSummary,
  Subtree,
  type SubtreeEntry,
  type SubtreeTotals,
  type TouchedIndex,
  type Toucher,
} from "./lib/report/subtree.ts";
export { type Container, containerOfPath, parseContainer } from "./lib/tree/container.ts";
export {
  ECS_VERSION,
  type EcsDocument,
  type EcsHost,
  type OsRelease,
  parseOsRelease,
  toEcs,
} from "./lib/sink/ecs.ts";
export { type ExecName, ExecNames, type ExecNameStats } from "./lib/source/exec_names/names.ts";
export { type ExecHeader, parseExecHeader, type ReadAt } from "./lib/source/exec_names/header.ts";
export { FanotifySource, type MarkStats, MountWatch } from "./ffi/source/exec_names.ts";
export { type AuditSetup, AuditSource, type AuditSourceOptions } from "./ffi/source/audit.ts";
export {
  AUDIT_WAIT_MS,
  AuditJoin,
  type AuditJoinStats,
  type AuditMatch,
} from "./lib/source/audit/join.ts";
export { type AssemblerStats, AuditAssembler, type AuditExec } from "./lib/source/audit/records.ts";
export { absolutePath, FileSource, FilesUnavailable } from "./ffi/source/files.ts";
export { type BpfExecOptions, BpfExecSource } from "./ffi/source/bpf_exec.ts";
export {
  type ExecStage,
  type LineStage,
  LossQueue,
  type StageLine,
  type StageLoss,
  WAIT,
} from "./lib/pipeline/stage.ts";
export { ExecNamesStage } from "./lib/source/exec_names/stage.ts";
export { type AuditLossReason, AuditStage } from "./lib/source/audit/stage.ts";
export { BpfNetSource, NetUnavailable } from "./ffi/source/bpf_net.ts";
export { NetStage } from "./lib/source/bpf_net/stage.ts";
export {
  decodeNet,
  type NetDisconnect,
  type NetEvent,
  type NetOutcome,
  type NetSkip,
  type NetSyscalls,
} from "./lib/source/bpf_net/record.ts";
export { BpfExecStage, type BpfRecords, type CgroupBaseline } from "./lib/source/bpf_exec/stage.ts";
export type { BpfExec } from "./lib/source/bpf_exec/record.ts";
export {
  type FileAction,
  type FileChange,
  FileEvents,
  type FileEventStats,
  type FileLookups,
} from "./lib/source/files/events.ts";
export { type FanHandle, type FidEvent } from "./lib/source/fanotify_wire.ts";
