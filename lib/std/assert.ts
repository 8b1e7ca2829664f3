/**
 * A small stand-in for `@std/assert`, mapped by `deno.json` while JSR is out of reach: the
 * assertions proctree's tests use, with std's names and signatures, built on `node:assert`.
 *
 * @module
 */

import nodeAssert from "node:assert";

/** Raised by every assertion here. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

function fail(msg: string | undefined, fallback: string): never {
  throw new AssertionError(msg ?? fallback);
}

/** Asserts that `expr` is truthy. */
export function assert(expr: unknown, msg?: string): asserts expr {
  if (!expr) fail(msg, "Expected expression to be truthy");
}

/** Asserts deep equality (structural, like std). */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  try {
    nodeAssert.deepStrictEqual(actual, expected);
  } catch (e) {
    fail(msg ? `${msg}\n${(e as Error).message}` : undefined, (e as Error).message);
  }
}

/** Asserts deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  try {
    nodeAssert.notDeepStrictEqual(actual, expected);
  } catch (e) {
    fail(msg, (e as Error).message);
  }
}

/** Asserts `Object.is` equality. */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  if (!Object.is(actual, expected)) {
    fail(
      msg,
      `Values are not strictly equal: ${Deno.inspect(actual)} !== ${Deno.inspect(expected)}`,
    );
  }
}

/** Asserts that `actual` is neither null nor undefined. */
export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T> {
  if (actual === null || actual === undefined) fail(msg, `Expected a value, got ${actual}`);
}

/** Asserts that `actual` matches `expected`. */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (!expected.test(actual)) fail(msg, `Expected ${Deno.inspect(actual)} to match ${expected}`);
}

/** Asserts that `actual` contains `expected`. */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    fail(msg, `Expected ${Deno.inspect(actual)} to include ${Deno.inspect(expected)}`);
  }
}

/** Asserts `actual > expected`. */
export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual > expected)) fail(msg, `Expected ${actual} > ${expected}`);
}

/** Asserts `actual >= expected`. */
export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual >= expected)) fail(msg, `Expected ${actual} >= ${expected}`);
}

/** Asserts `actual < expected`. */
export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual < expected)) fail(msg, `Expected ${actual} < ${expected}`);
}

/** Asserts `actual <= expected`. */
export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual <= expected)) fail(msg, `Expected ${actual} <= ${expected}`);
}

/** Asserts that `fn` throws; returns the error. */
export function assertThrows(fn: () => unknown, msg?: string): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  fail(msg, "Expected function to throw");
}

/** Asserts that `fn` rejects; returns the error. */
export async function assertRejects(
  fn: () => PromiseLike<unknown>,
  msg?: string,
): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  fail(msg, "Expected function to reject");
}
