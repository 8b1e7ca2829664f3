/**
 * The proctree command line: `watch`, `run`, `report`, `chain`, `tree`.
 *
 * @module
 */

import { CliError, say } from "./cli/errors.ts";
import { OutputError } from "./ffi/sink/output.ts";
import { LibcError } from "./ffi/libc.ts";
import { watch } from "./cli/watch.ts";
import { chain } from "./cli/chain.ts";
import { tree } from "./cli/tree.ts";
import { run } from "./cli/run.ts";
import { report } from "./cli/report.ts";
import denoJson from "./deno.json" with { type: "json" };

/** The version, from deno.json. */
export const VERSION: string = denoJson.version;

const HELP = `proctree ${VERSION} — who started this process? Live process events and lineage from
the kernel's proc connector.

Usage: proctree <command> [options]

Commands:
  watch   stream process events as JSON lines, each with its ancestor chain
            proctree watch --events exec | jq -c '{pid, argv, chain}'
  run     run a command and record every process it starts
            proctree run --summary run.json --html run.html -- npm install
  report  a page (or Perfetto trace) of the processes in a watch log, or a path's history
            proctree report events.jsonl --under sshd --html ssh.html
  chain   print the ancestors of a live process (pid|comm|user;…)
            proctree chain $$
  tree    print the live process tree
            proctree tree 1

Options:
  -h, --help     this help (proctree <command> --help for a command's options)
  -V, --version  the version

watch and run need root or CAP_NET_ADMIN (any user in the host's namespaces where the
kernel allows unprivileged proc-connector listeners; some kernels ≥ 6.6 do).`;

async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  switch (cmd) {
    case undefined:
    case "-h":
    case "--help":
    case "help":
      console.log(HELP);
      return cmd === undefined ? 2 : 0;
    case "-V":
    case "--version":
      console.log(`proctree ${VERSION}`);
      return 0;
    case "watch":
      return await watch(rest);
    case "run":
      return await run(rest);
    case "report":
      return report(rest);
    case "chain":
      return chain(rest);
    case "tree":
      return tree(rest);
    default:
      throw new CliError(`unknown command "${cmd}" (see proctree --help)`, 2);
  }
}

if (import.meta.main) {
  let status: number;
  try {
    status = await main(Deno.args);
  } catch (e) {
    if (e instanceof CliError) {
      say(`proctree: ${e.message}`);
      status = e.status;
    } else if (e instanceof OutputError || e instanceof LibcError) {
      // Output and system-call failures are the machine's state, not proctree's bug.
      say(`proctree: ${e.message}`);
      status = 1;
    } else {
      say(`proctree: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      status = 70;
    }
  }
  Deno.exit(status);
}
