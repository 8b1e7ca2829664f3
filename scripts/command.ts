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
  // An 8 MiB young generation (V8 takes more by default): less CPU and a lower peak RSS in storms
  // than 1 MiB (BENCHMARKS.md).
  "--v8-flags=--max-semi-space-size=8",
  "--allow-ffi",
  "--allow-read",
  "--allow-run",
  "--allow-write",
  new URL("../main.ts", import.meta.url).pathname,
];
