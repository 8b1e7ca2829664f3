/**
 * Opening a session for a command, with subscription failures turned into one-line
 * {@linkcode CliError}s.
 *
 * @module
 */

import { ConnectorError, type ListenOptions, Session } from "../session.ts";
import { CliError } from "./errors.ts";

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
