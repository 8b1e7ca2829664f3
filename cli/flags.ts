/**
 * Command-line flags: parsing with clear usage errors (exit 2), and the value forms the
 * commands share (whole numbers, sizes).
 *
 * @module
 */

import { type Args, parseArgs, type ParseOptions } from "@std/cli";
import { CliError } from "./errors.ts";

/**
 * Parses flags. An unknown flag, and a flag that takes a value given none (or an empty
 * one), are usage errors (exit 2): an empty `--under` would silently match nothing.
 */
export function parseFlags(args: string[], options: ParseOptions, command: string): Args {
  const f = parseArgs(args, {
    ...options,
    unknown: (arg: string, key?: string) => {
      if (key === undefined) return true; // a positional argument
      throw new CliError(`${command}: unknown option ${arg} (see proctree ${command} --help)`, 2);
    },
  });
  for (const name of [...(options.string ?? []), ...(options.collect ?? [])]) {
    const values = Array.isArray(f[name]) ? f[name] : [f[name]];
    if (values.some((v: unknown) => v === "")) {
      throw new CliError(
        `${command}: --${name} expects a value (see proctree ${command} --help)`,
        2,
      );
    }
  }
  return f;
}

/** Parses a positive integer flag value, or fails with a usage error. */
export function intFlag(value: unknown, name: string, min = 0): number {
  const n = Number(value);
  if (value === "" || !Number.isInteger(n) || n < min) {
    throw new CliError(
      `--${name} expects a whole number ≥ ${min}, got ${JSON.stringify(value)}`,
      2,
    );
  }
  return n;
}

/** Parses sizes such as `8M`, `512k`, `1048576`. */
export function bytesFlag(value: unknown, name: string, minBytes = 0): number {
  const m = /^(\d+)([kKmMgG]?)(i?B)?$/.exec(String(value));
  const bytes = m ? Number(m[1]) * UNITS[m[2].toLowerCase() as keyof typeof UNITS] : NaN;
  if (!(bytes >= minBytes)) {
    throw new CliError(
      `--${name} expects a size such as 8M or 1048576` +
        (minBytes ? ` (at least ${formatBytes(minBytes)})` : "") + `, got ${JSON.stringify(value)}`,
      2,
    );
  }
  return bytes;
}

const UNITS = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as const;

/** A size as the flags take it: `16M`, `64k`, or bytes. */
export function formatBytes(bytes: number): string {
  for (const [suffix, unit] of [["G", UNITS.g], ["M", UNITS.m], ["k", UNITS.k]] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  return String(bytes);
}
