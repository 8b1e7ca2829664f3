/**
 * Opening a session for a command: the `--rcvbuf` option every command shares, the note on
 * the buffer the kernel granted, and subscription failures as one-line {@linkcode CliError}s.
 *
 * @module
 */

import { ConnectorError, type ListenOptions, Session } from "../session.ts";
import { DEFAULT_RCVBUF_BYTES } from "../ffi/connector.ts";
import { CliError } from "./errors.ts";
import { bytesFlag, formatBytes } from "./flags.ts";

/** Smallest receive buffer `--rcvbuf` accepts (a page): 0 would mean the kernel minimum. */
export const MIN_RCVBUF_BYTES = 4096;

/** The `--rcvbuf` value of any command (undefined: the default). */
export function rcvbufFlag(value: string | undefined): number {
  return value === undefined ? DEFAULT_RCVBUF_BYTES : bytesFlag(value, "rcvbuf", MIN_RCVBUF_BYTES);
}

/** Subscribes (see `session.ts`); a failure is one line and exit status 1. */
export function openSession(opts: ListenOptions): Session {
  try {
    return Session.open(opts);
  } catch (e) {
    if (e instanceof ConnectorError) throw new CliError(e.message, 1);
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`needs --allow-ffi and --allow-read: ${(e as Error).message}`, 1);
    }
    throw e;
  }
}

/** `rcvbuf 16M`, or what was granted when it is less than was asked. */
export function rcvbufNote(
  s: { connector: { rcvbufBytes: number; askedRcvbufBytes: number } },
): string {
  // Linux doubles a requested buffer for its bookkeeping and reports the doubled size.
  const usable = Math.floor(s.connector.rcvbufBytes / 2);
  const asked = s.connector.askedRcvbufBytes;
  return usable < asked
    ? `rcvbuf ${formatBytes(usable)}, less than the ${formatBytes(asked)} asked: ` +
      `net.core.rmem_max caps it without CAP_NET_ADMIN`
    : `rcvbuf ${formatBytes(asked)}`;
}
