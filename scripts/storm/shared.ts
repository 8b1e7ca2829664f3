/**
 * `../shared/storm` (beside the checkout): `stormgen`, which forks fast enough to overflow a
 * socket, and `zzstorm_true`, its microsecond exec target. Found and built here for every
 * script that storms with them.
 *
 * @module
 */

/** Where `../shared/storm` is, if anywhere. */
export const SHARED_STORM: string | undefined = [
  "../../../shared/storm",
  "../../../../shared/storm",
]
  .map((p) => new URL(p, import.meta.url).pathname)
  .find((p) => {
    try {
      return Deno.statSync(`${p}/stormgen.c`).isFile;
    } catch {
      return false;
    }
  });

/**
 * Builds `stormgen` and `zzstorm_true` into `dir`; false when `../shared/storm` is not there.
 * Throws when the compiler fails.
 */
export function buildSharedStorm(dir: string): boolean {
  if (!SHARED_STORM) return false;
  const script = `cc -O2 -o ${dir}/stormgen ${SHARED_STORM}/stormgen.c && ` +
    `cc -O2 -static -nostdlib -o ${dir}/zzstorm_true ${SHARED_STORM}/zzstorm_true.c`;
  const r = new Deno.Command("sh", { args: ["-c", script], stdout: "inherit", stderr: "inherit" })
    .outputSync();
  if (!r.success) throw new Error(`failed: ${script}`);
  return true;
}
