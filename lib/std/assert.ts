/**
 * A small stand-in for `@std/assert`, mapped by `deno.json` while JSR is out of reach: the
 * assertions proctree's tests use, with std's names, signatures and failure messages
 * (`assertEquals` shows a line diff of both values, as std does). Pointing `@std/assert` at
 * `jsr:@std/assert` needs no change in any test.
 *
 * @module
 */

import { isDeepStrictEqual } from "node:util";

/** Raised by every assertion here. */
export class AssertionError extends Error {
  /** An assertion failure with `message`. */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

function fail(msg: string | undefined, detail: string): never {
  throw new AssertionError(msg ? `${msg}: ${detail}` : detail);
}

/** Asserts that `expr` is truthy. */
export function assert(expr: unknown, msg?: string): asserts expr {
  if (!expr) throw new AssertionError(msg ?? "Expected expression to be truthy");
}

function show(v: unknown): string {
  return Deno.inspect(v, { depth: Infinity, sorted: true, trailingComma: true, compact: false });
}

/** A line diff of two renderings: `-` actual only, `+` expected only (LCS over lines). */
export function lineDiff(actual: string, expected: string): string {
  const a = actual.split("\n");
  const b = expected.split("\n");
  const lcs: number[][] = Array.from(
    { length: a.length + 1 },
    () => new Array(b.length + 1).fill(0),
  );
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: string[] = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push(`    ${a[i++]}`);
      j++;
    } else if (i < a.length && (j === b.length || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push(`-   ${a[i++]}`);
    } else out.push(`+   ${b[j++]}`);
  }
  return out.join("\n");
}

/** Asserts deep equality (structural, like std), showing a diff when it fails. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (isDeepStrictEqual(actual, expected)) return;
  fail(
    msg,
    `Values are not equal.\n\n    [Diff] Actual / Expected\n\n${
      lineDiff(show(actual), show(expected))
    }\n`,
  );
}

/** Asserts that `actual <= expected`. */
export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual <= expected)) fail(msg, `Expect ${show(actual)} <= ${show(expected)}`);
}

/** Asserts that `actual` matches `expected`. */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (!expected.test(actual)) fail(msg, `Expected actual: "${actual}" to match: "${expected}".`);
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = abstract new (...args: any[]) => E;

function checkError<E extends Error>(
  e: unknown,
  errorClass: ErrorClass<E> | undefined,
  includes: string | undefined,
  msg: string | undefined,
): void {
  if (!errorClass) return;
  if (!(e instanceof errorClass)) {
    fail(msg, `Expected error to be instance of "${errorClass.name}", but was "${show(e)}".`);
  }
  if (includes !== undefined && !e.message.includes(includes)) {
    fail(msg, `Expected error message to include "${includes}", but got "${e.message}".`);
  }
}

/** Asserts that `fn` throws; returns the error. */
export function assertThrows(fn: () => unknown, msg?: string): unknown;
/** Asserts that `fn` throws an `errorClass` whose message includes `msgIncludes`. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  errorClass: ErrorClass<E>,
  msgIncludes?: string,
  msg?: string,
): E;
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  classOrMsg?: ErrorClass<E> | string,
  msgIncludes?: string,
  msg?: string,
): unknown {
  const errorClass = typeof classOrMsg === "function" ? classOrMsg : undefined;
  const message = typeof classOrMsg === "string" ? classOrMsg : msg;
  try {
    fn();
  } catch (e) {
    checkError(e, errorClass, msgIncludes, message);
    return e;
  }
  throw new AssertionError(message ?? "Expected function to throw.");
}
