// --files against the real kernel (issue 15): every change under PATH reported once, with
// its action, path and the process (and chain) that made it; nothing outside PATH; deletes
// of a tree that existed before proctree started keep their full paths; proctree's own
// output is never reported; without CAP_SYS_ADMIN, one clear line.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { hasCommand, noKernel, PROCTREE, sleep, startProctree } from "./kernel.ts";
import type { WatchRecord } from "../lib/record/record.ts";

const ignore = noKernel !== null;

/** A copy of /bin/sh with a name of its own: the ancestor every chain must go through. */
async function namedShell(dir: string): Promise<string> {
  const sh = `${dir}/filesparent`;
  await Deno.copyFile("/bin/sh", sh);
  await Deno.chmod(sh, 0o755);
  return sh;
}

function fileLines(records: WatchRecord[]): WatchRecord[] {
  return records.filter((r) => r.event === "file");
}

/** Waits until no new output for a moment (the last changes are drained). */
async function settle(ms = 700): Promise<void> {
  await sleep(ms);
}

Deno.test(
  { name: "kernel: --files reports each change once, by its process", ignore },
  async () => {
    const base = await Deno.makeTempDir({ prefix: "proctree-files-" });
    const dir = `${base}/watched`;
    const outside = `${base}/outside`;
    await Deno.mkdir(dir);
    await Deno.mkdir(outside);
    const sh = await namedShell(base);
    try {
      const w = await startProctree(["watch", "--files", dir]);
      const n = 2000;
      const script = [
        `cd ${dir}`,
        "touch a",
        "echo x > b",
        "mv b c",
        "rm a",
        "mkdir sub",
        `i=0; while [ $i -lt ${n} ]; do : > sub/f$i; i=$((i+1)); done`,
        "rm -rf sub",
        `touch ${outside}/x; mkdir ${outside}/d; rm -r ${outside}/d`,
      ].join("; ");
      const r = await new Deno.Command(sh, { args: ["-c", script] }).output();
      assert(r.success);
      await settle();
      const { records } = await w.stop();
      const files = fileLines(records);
      // Nothing outside PATH, every line through the named ancestor.
      assertEquals(files.filter((f) => !f.path!.startsWith(dir + "/")).length, 0);
      for (const f of files) assertMatch(f.chain!, /\|filesparent\|/, JSON.stringify(f));
      // Every change once.
      const keys = files.map((f) => `${f.action} ${f.path} ${f.to ?? ""} ${f.pid}`);
      assertEquals(new Set(keys).size, keys.length, "a change reported twice");
      const by = (action: string, path: string) =>
        files.filter((f) => f.action === action && f.path === `${dir}/${path}`);
      // The acting program: its name, or — for a process that exited before proctree read
      // its exec (comm null; README, Guarantees) — the executable fanotify named.
      const exeOf = new Map<number, string>();
      for (const r of records) {
        if (r.event === "exec" && r.exe) exeOf.set(r.pid!, r.exe.slice(r.exe.lastIndexOf("/") + 1));
      }
      const who = (f: WatchRecord) => {
        assert(f.comm === null || f.comm === exeOf.get(f.pid!), JSON.stringify(f));
        return f.comm ?? exeOf.get(f.pid!);
      };
      assertEquals(by("create", "a").map(who), ["touch"]);
      assertEquals(by("create", "b").map(who), ["filesparent"]);
      assertEquals(by("write", "b").map(who), ["filesparent"]);
      assertEquals(by("rename", "b").map((f) => [who(f), f.to]), [["mv", `${dir}/c`]]);
      assertEquals(by("delete", "a").map(who), ["rm"]);
      assertEquals(by("create", "sub").map((f) => [who(f), f.dir]), [["mkdir", true]]);
      const created = files.filter((f) => f.action === "create" && /\/sub\/f\d+$/.test(f.path!));
      const deleted = files.filter((f) => f.action === "delete" && /\/sub\/f\d+$/.test(f.path!));
      assertEquals(created.length, n);
      assertEquals(deleted.length, n);
      assert(deleted.every((f) => who(f) === "rm"));
      assertEquals(by("delete", "sub").map((f) => [who(f), f.dir]), [["rm", true]]);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
);

Deno.test({
  name: "kernel: --files: rm -rf of a tree that existed before start keeps every full path",
  ignore,
}, async () => {
  const base = await Deno.makeTempDir({ prefix: "proctree-files-" });
  const moved = await Deno.makeTempDir({ prefix: "proctree-files-in-" });
  try {
    const mk = `for d in $(seq 50); do mkdir -p ${base}/pre/d$d; ` +
      `for f in $(seq 20); do : > ${base}/pre/d$d/f$f; done; done`;
    assert((await new Deno.Command("sh", { args: ["-c", mk] }).output()).success);
    const log = `${base}/proctree.jsonl`;
    const w = await startProctree(["watch", "--files", base, "-o", log]);
    // A directory moved in from outside is walked: changes inside it are named too.
    const run = `rm -rf ${base}/pre; mv ${moved} ${base}/in; touch ${base}/in/x`;
    assert((await new Deno.Command("sh", { args: ["-c", run] }).output()).success);
    await settle();
    await w.stop();
    const files = fileLines(
      (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l)),
    );
    const deletes = files.filter((f) => f.action === "delete");
    assertEquals(deletes.filter((f) => !f.dir && /\/pre\/d\d+\/f\d+$/.test(f.path!)).length, 1000);
    assertEquals(deletes.filter((f) => f.dir).length, 51); // d1…d50 and pre
    assertEquals(
      files.filter((f) => f.action === "rename").map((f) => [f.path, f.to]),
      [[moved, `${base}/in`]],
    );
    assertEquals(files.filter((f) => f.path === `${base}/in/x`).length > 0, true);
    // proctree's own log, under the watched path, is never reported.
    assertEquals(files.filter((f) => f.path === log).length, 0);
  } finally {
    await Deno.remove(base, { recursive: true });
    await Deno.remove(moved, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name: "kernel: --files without CAP_SYS_ADMIN: one line, status 1",
  ignore: ignore || !hasCommand("setpriv"),
}, async () => {
  const r = await new Deno.Command("setpriv", {
    args: [
      "--inh-caps=-sys_admin",
      "--bounding-set=-sys_admin",
      "--",
      ...PROCTREE,
      "watch",
      "--exec-names",
      "proc",
      "--files",
      "/tmp",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assertEquals(r.code, 1);
  const lines = new TextDecoder().decode(r.stderr).trim().split("\n");
  assertEquals(lines, ["proctree: --files: needs CAP_SYS_ADMIN (EPERM)"]);
});

Deno.test({
  name: "kernel: run --files lists each process's changes; a PATH created later is watched",
  ignore,
}, async () => {
  const base = await Deno.makeTempDir({ prefix: "proctree-files-" });
  const later = `${base}/later`; // does not exist when proctree starts
  const summary = `${base}/summary.json`;
  try {
    const r = await new Deno.Command(PROCTREE[0], {
      args: [
        ...PROCTREE.slice(1),
        "run",
        "-q",
        "--summary",
        summary,
        "--files",
        later,
        "--",
        "sh",
        "-c",
        `mkdir ${later} && touch ${later}/x && rm ${later}/x`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assertEquals(r.code, 0);
    const text = new TextDecoder().decode(r.stderr);
    assertMatch(text, /touch .*\n\s+files: 1 create, 1 attrib, 1 write: \S+\/later\/x\n/);
    const doc = JSON.parse(await Deno.readTextFile(summary));
    const kids = doc.tree.children as { argv: string[]; files?: { counts: object } }[];
    const files = (cmd: string) => kids.find((k) => k.argv?.[0] === cmd)?.files;
    assertEquals(files("touch")?.counts, { create: 1, attrib: 1, write: 1 });
    assertEquals(files("rm")?.counts, { delete: 1 });
    // Who touched this file: the summary's index, by path.
    const by = doc.files_touched.paths[`${later}/x`] as { name: string; actions: string[] }[];
    assertEquals(by.map((t) => [t.name.split(" ")[0], t.actions]), [
      ["touch", ["create", "attrib", "write"]],
      ["rm", ["delete"]],
    ]);
    assertEquals(doc.files_touched.more, 0);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test(
  {
    name: "kernel: --files names every short-lived actor whose exec line named its executable",
    ignore,
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "proctree-files-" });
    try {
      const w = await startProctree(["watch", "--files", dir]);
      // 200 programs that live a millisecond: most are gone before /proc can be read.
      const script = `cd ${dir}; i=0; while [ $i -lt 100 ]; do touch f$i; rm f$i; i=$((i+1)); done`;
      assert((await new Deno.Command("sh", { args: ["-c", script] }).output()).success);
      await settle();
      const { records } = await w.stop();
      const exeOf = new Map<string, string>();
      for (const r of records) if (r.event === "exec" && r.exe && r.id) exeOf.set(r.id, r.exe);
      const files = fileLines(records);
      assert(files.length >= 200, `${files.length} file lines`);
      let unknown = 0;
      for (const f of files) {
        const exe = f.id ? exeOf.get(f.id) : undefined;
        if (!exe) continue;
        // The line names the program: its comm, or its executable on the line and in the chain.
        const head = f.chain!.split(";")[0].split("|")[1];
        if (f.comm === null && (f.exe !== exe || head !== `[${exe.split("/").pop()}]`)) unknown++;
      }
      assertEquals(unknown, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  {
    name: "kernel: --files: a change deeper than PATH_MAX that existed at start is counted",
    ignore,
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "proctree-files-" });
    const part = "d".repeat(200);
    // 25 levels of 200 bytes: past the 4 096 bytes the kernel spells a path in (bash: dash's
    // cd gives up on its own idea of the path at PATH_MAX).
    const deep = `cd ${dir} && for i in $(seq 25); do mkdir ${part} && cd ${part}; done`;
    try {
      assert((await new Deno.Command("bash", { args: ["-c", deep] }).output()).success);
      const w = await startProctree(["watch", "--files", dir, "--stats", "1"]);
      const touch = `${deep.replace(/mkdir \S+ && /, "")} && touch deepfile && echo x > deepfile`;
      assert((await new Deno.Command("bash", { args: ["-c", touch] }).output()).success);
      await sleep(1500);
      const { records } = await w.stop();
      // Never printed under a wrong or shortened path; never silently dropped either.
      const wrong = fileLines(records).filter((f) => f.path!.endsWith("/deepfile"));
      for (const f of wrong) assert(f.path!.length > 4096, f.path);
      const unnamed = Math.max(
        0,
        ...records.filter((r) => r.event === "stats").map((r) =>
          Number(r.file_changes_unnamed ?? 0)
        ),
      );
      assert(wrong.length > 0 || unnamed > 0, "the change is printed whole or counted as unnamed");
    } finally {
      await new Deno.Command("rm", { args: ["-rf", dir] }).output();
    }
  },
);

Deno.test({
  name: "kernel: report --path prints a path's history from a real watch log",
  ignore,
}, async () => {
  const base = await Deno.makeTempDir({ prefix: "proctree-files-" });
  const w = `${base}/w`;
  const log = `${base}/log.jsonl`;
  try {
    await Deno.mkdir(w);
    const p = await startProctree(["watch", "--files", w, "-o", log]);
    const script = `cd ${w} && echo x > a && mv a b && mkdir d && touch d/c && rm -r d`;
    assert((await new Deno.Command("sh", { args: ["-c", script] }).output()).success);
    await settle();
    await p.stop();
    const report = async (...args: string[]) => {
      const r = await new Deno.Command(PROCTREE[0], {
        args: [...PROCTREE.slice(1), "report", log, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
      return {
        out: new TextDecoder().decode(r.stdout).trim().split("\n"),
        err: new TextDecoder().decode(r.stderr).trim(),
      };
    };
    const d = await report("--path", `${w}/d`);
    assertEquals(d.out.map((l) => l.split("  ")[1]), [
      "create (dir)",
      "create",
      "attrib",
      "write",
      "delete",
      "delete (dir)",
    ]);
    assert(d.out[0].includes(" mkdir "), d.out[0]);
    assert(d.out.at(-1)!.includes(" rm "), d.out.at(-1));
    assertEquals(
      d.err,
      `proctree: 6 changes to ${w}/d (${
        (await Deno.readTextFile(log)).trim().split("\n").length
      } lines read)`,
    );
    // A rename is in the history of both its sides; --json prints the log's own lines.
    const b = await report("--path", `${w}/b`, "--json");
    const lines = b.out.map((l) => JSON.parse(l));
    assertEquals(lines.map((l) => [l.action, l.path, l.to, l.comm]), [
      ["rename", `${w}/a`, `${w}/b`, "mv"],
    ]);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
