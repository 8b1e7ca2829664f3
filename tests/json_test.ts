import { assertEquals } from "@std/assert";
import { stringifyDeep } from "../lib/sink/json.ts";

Deno.test("json: same bytes as JSON.stringify for plain data", () => {
  const doc = {
    command: ["sh", "-c", 'echo "hi"\n'],
    exit_status: 3,
    complete: true,
    skipped: undefined,
    totals: { processes: 2, failed: 1 },
    tree: { pid: 1, argv: null, children: [{ pid: 2, children: [] }, { pid: 3, e: {} }] },
    odd: "\udcff\u2028",
    list: [1, "a", null, true, [], [[]]],
  };
  assertEquals(stringifyDeep(doc), JSON.stringify(doc, null, 2));
  assertEquals(stringifyDeep(7), "7");
  assertEquals(stringifyDeep([]), "[]");
});

Deno.test("json: a tree 100 000 levels deep", () => {
  const root: { pid: number; children: unknown[] } = { pid: 0, children: [] };
  let at = root;
  for (let i = 1; i <= 100_000; i++) {
    const c = { pid: i, children: [] };
    at.children.push(c);
    at = c;
  }
  const text = stringifyDeep(root);
  let depth = 0;
  for (let p = JSON.parse(text); p.children.length; p = p.children[0]) depth++;
  assertEquals(depth, 100_000);
});
