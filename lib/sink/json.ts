/**
 * `JSON.stringify(value, null, indent)` without recursion: V8's own stringify exhausts the
 * stack at a few thousand levels of nesting, and a process tree can be that deep (a program
 * that forks and exits in a loop). Output is byte-identical to `JSON.stringify` for plain
 * data (objects, arrays, strings, numbers, booleans, null; undefined members left out) up
 * to {@linkcode MAX_INDENT_LEVELS} levels; deeper levels are not indented further, so the
 * size stays linear in the data.
 *
 * @module
 */

/** Deepest level that is indented further. */
export const MAX_INDENT_LEVELS = 64;

type Frame = { open: string; close: string; items: [string | null, unknown][]; at: number };

/** Serializes `value` like `JSON.stringify(value, null, indent)`, at any depth. */
export function stringifyDeep(value: unknown, indent = 2): string {
  const pads: string[] = [];
  const pad = (level: number) =>
    pads[Math.min(level, MAX_INDENT_LEVELS)] ??= " ".repeat(
      indent * Math.min(level, MAX_INDENT_LEVELS),
    );
  const out: string[] = [];
  const stack: Frame[] = [];
  const leaf = (v: unknown): string | null => {
    if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
    if (typeof (v as { toJSON?: unknown }).toJSON === "function") return JSON.stringify(v);
    return null;
  };
  const open = (v: object): void => {
    const isArray = Array.isArray(v);
    const items: [string | null, unknown][] = isArray
      ? (v as unknown[]).map((x) => [null, x === undefined ? null : x])
      : Object.entries(v).filter(([, x]) => x !== undefined && typeof x !== "function");
    const [o, c] = isArray ? ["[", "]"] : ["{", "}"];
    if (items.length === 0) {
      out.push(o + c);
      return;
    }
    out.push(o);
    stack.push({ open: o, close: c, items, at: 0 });
  };
  const first = leaf(value);
  if (first !== null) return first;
  open(value as object);
  while (stack.length) {
    const f = stack[stack.length - 1];
    const depth = stack.length;
    if (f.at === f.items.length) {
      stack.pop();
      out.push("\n" + pad(depth - 1) + f.close);
      continue;
    }
    const [key, v] = f.items[f.at++];
    out.push(
      (f.at > 1 ? "," : "") + "\n" + pad(depth) +
        (key === null ? "" : JSON.stringify(key) + ": "),
    );
    const s = leaf(v);
    if (s !== null) out.push(s);
    else open(v as object);
  }
  return out.join("");
}
