// One shape for "this source cannot run here" (issue 24, item 6): every source's error is a
// SourceUnavailable, and the CLI's one line comes from it alone.
import { assert, assertEquals } from "@std/assert";
import { SourceUnavailable } from "../lib/pipeline/unavailable.ts";
import {
  AuditUnavailable,
  BpfUnavailable,
  ConnectorError,
  FanotifyUnavailable,
  FilesUnavailable,
  NetUnavailable,
} from "../mod.ts";

Deno.test("SourceUnavailable: each source's error, its code and the CLI's line", () => {
  const cases: [SourceUnavailable, string, string][] = [
    [new ConnectorError("EPERM", "the kernel refused"), "EPERM", "the kernel refused"],
    [
      new FilesUnavailable("EPERM", "needs CAP_SYS_ADMIN (EPERM)"),
      "EPERM",
      "--files: needs CAP_SYS_ADMIN (EPERM)",
    ],
    [new AuditUnavailable("locked", "audit is locked"), "locked", "--argv audit: audit is locked"],
    [
      new FanotifyUnavailable("EPERM"),
      "EPERM",
      "--exec-names fanotify: fanotify needs CAP_SYS_ADMIN (EPERM)",
    ],
    [new BpfUnavailable("no BTF at /x"), "UNAVAILABLE", "--exec-facts bpf: no BTF at /x"],
    [new NetUnavailable("no BTF at /x"), "UNAVAILABLE", "--net: no BTF at /x"],
  ];
  for (const [e, code, line] of cases) {
    assert(e instanceof SourceUnavailable && e instanceof Error);
    assertEquals([e.code, e.line, e.name], [code, line, e.constructor.name]);
  }
});
