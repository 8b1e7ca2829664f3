/**
 * How tests and scripts start proctree from this checkout: the same Deno, the same flags as
 * the `proctree` task in deno.json.
 *
 * @module
 */

/** `deno run <flags> main.ts`; append the command and its options. */
export const PROCTREE: readonly string[] = [
  Deno.execPath(),
  "run",
  // A small young generation keeps peak RSS low in storms (BENCHMARKS.md).
  "--v8-flags=--max-semi-space-size=1",
  "--allow-ffi",
  "--allow-read",
  "--allow-run",
  "--allow-write",
  new URL("../main.ts", import.meta.url).pathname,
];
