/**
 * Makes the bundle an executable: prepends the `deno run` line with proctree's permissions.
 *
 *   deno run --allow-read=dist --allow-write=dist scripts/shebang.ts dist/proctree.js
 *
 * @module
 */

const SHEBANG =
  "#!/usr/bin/env -S deno run --v8-flags=--max-semi-space-size=8 --allow-ffi --allow-read --allow-run --allow-write\n";

const [path] = Deno.args;
if (!path) {
  console.error("usage: shebang.ts FILE");
  Deno.exit(2);
}
const text = Deno.readTextFileSync(path);
Deno.writeTextFileSync(path, text.startsWith("#!") ? text : SHEBANG + text, { mode: 0o755 });
Deno.chmodSync(path, 0o755);
