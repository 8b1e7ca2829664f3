/**
 * This host's user names, from `/etc/passwd`.
 *
 * @module
 */

import { Users } from "../lib/tree/users.ts";

/** Where the host's users are listed. */
export const PASSWD_PATH = "/etc/passwd";

/** A user-name table over this host's `/etc/passwd`. */
export function hostUsers(): Users {
  return new Users(() => Deno.readTextFileSync(PASSWD_PATH));
}
