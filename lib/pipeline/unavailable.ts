/**
 * Why a source cannot run here, in one shape for every source: the command-line option
 * that asked for it (the CLI's one-line error starts with it), a stable code (the errno name
 * of the refused call, or a word such as `NO_ACK`), and a sentence for the user. Each
 * source's own class (`ConnectorError`, `FilesUnavailable`, …) extends it, so a caller
 * catches one class. Pure.
 *
 * @module
 */

/** A source cannot run here; see the module doc. */
export class SourceUnavailable extends Error {
  /** The option that asked for the source (`--files`), or "" for the connector itself. */
  readonly option: string;
  /** The errno name of the refused call, or a stable word. */
  readonly code: string;

  /** `option`, `code` and `message` as in the module doc. */
  constructor(option: string, code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.option = option;
    this.code = code;
  }

  /** The one line the CLI prints: `--files: needs CAP_SYS_ADMIN (EPERM)`. */
  get line(): string {
    return this.option ? `${this.option}: ${this.message}` : this.message;
  }
}
