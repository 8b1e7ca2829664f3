import { assert, assertEquals, assertMatch } from "@std/assert";
import { hasCommand, haveBundle, PROCTREE } from "./kernel.ts";

const root = new URL("..", import.meta.url).pathname;
if (!haveBundle) console.log("shipping tests ignored: no dist/proctree.js (run deno task bundle)");
const haveAnalyze = hasCommand("systemd-analyze");
if (!haveAnalyze) console.log("systemd unit test ignored: systemd-analyze is not installed");

Deno.test("cli: --version comes from deno.json, --help lists every command with an example", async () => {
  const json = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  const v = await new Deno.Command(PROCTREE[0], {
    args: [...PROCTREE.slice(1), "--version"],
    stdout: "piped",
  }).output();
  assertEquals(new TextDecoder().decode(v.stdout).trim(), `proctree ${json.version}`);
  const h = new TextDecoder().decode(
    (await new Deno.Command(PROCTREE[0], {
      args: [...PROCTREE.slice(1), "--help"],
      stdout: "piped",
    }).output()).stdout,
  );
  for (const cmd of ["watch", "run", "chain", "tree"]) {
    assertMatch(h, new RegExp(`\\n  ${cmd} .*\\n +proctree ${cmd}`));
  }
});

Deno.test(
  { name: "shipping: install.sh installs the bundle and it runs", ignore: !haveBundle },
  async () => {
    const prefix = await Deno.makeTempDir();
    try {
      const r = await new Deno.Command("bash", {
        args: [`${root}scripts/install.sh`, "--prefix", prefix],
        env: { DENO: Deno.execPath() },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
      assertMatch(
        new TextDecoder().decode(r.stdout),
        new RegExp(`^installed proctree \\S+ as ${prefix}/bin/proctree\n`),
      );
      const out = await new Deno.Command(`${prefix}/bin/proctree`, {
        args: ["chain", String(Deno.pid)],
        stdout: "piped",
      })
        .output();
      assertEquals(out.code, 0);
      assert(new TextDecoder().decode(out.stdout).startsWith(`${Deno.pid}|deno|`));
    } finally {
      await Deno.remove(prefix, { recursive: true });
    }
  },
);

Deno.test("shipping: install.sh on a fresh checkout says what to run and writes nothing", async () => {
  const checkout = await Deno.makeTempDir();
  const prefix = `${checkout}/prefix`;
  try {
    await Deno.mkdir(`${checkout}/scripts`);
    await Deno.copyFile(`${root}scripts/install.sh`, `${checkout}/scripts/install.sh`);
    const r = await new Deno.Command("bash", {
      args: [`${checkout}/scripts/install.sh`, "--prefix", prefix],
      stderr: "piped",
    }).output();
    assertEquals(r.code, 1);
    assertMatch(new TextDecoder().decode(r.stderr), /npx -y deno@2\.9\.6 task install/);
    let made = true;
    await Deno.stat(prefix).catch(() => (made = false));
    assertEquals(made, false, "nothing created under the prefix");
  } finally {
    await Deno.remove(checkout, { recursive: true });
  }
});

Deno.test({
  name: "shipping: the systemd unit passes systemd-analyze verify",
  ignore: !haveAnalyze,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    // verify wants ExecStart to exist: point it at a stand-in executable.
    const exe = `${dir}/proctree`;
    await Deno.writeTextFile(exe, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const unit = (await Deno.readTextFile(`${root}scripts/proctree.service`)).replaceAll(
      "/usr/local/bin/proctree",
      exe,
    );
    await Deno.writeTextFile(`${dir}/proctree.service`, unit);
    const r = await new Deno.Command("systemd-analyze", {
      args: ["verify", `${dir}/proctree.service`],
      stderr: "piped",
    })
      .output();
    const err = new TextDecoder().decode(r.stderr).split("\n").filter((l) =>
      l.includes("proctree.service")
    );
    assertEquals(r.code, 0, err.join("\n"));
    assertEquals(err, [], err.join("\n"));
    assertMatch(unit, /CapabilityBoundingSet=CAP_NET_ADMIN/);
    assertMatch(unit, /ProtectSystem=strict/);
    assertMatch(unit, /NoNewPrivileges=yes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: a PID argument that is not a number says so, exit 2", async () => {
  for (const cmd of ["tree", "chain"]) {
    const r = await new Deno.Command(PROCTREE[0], {
      args: [...PROCTREE.slice(1), cmd, "abc"],
      stdout: "null",
      stderr: "piped",
    }).output();
    assertEquals(r.code, 2);
    assertEquals(
      new TextDecoder().decode(r.stderr).trim(),
      `proctree: ${cmd}: abc is not a PID (see proctree ${cmd} --help)`,
    );
  }
});
