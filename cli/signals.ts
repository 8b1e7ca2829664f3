/**
 * Signal handlers held through shutdown. While a listener is registered, Deno does not let
 * the signal end the process; removed too early (before the session has taken its audit rule
 * down and restored `enabled`), a second Ctrl-C — `npx … task` passes one on besides the
 * terminal's — would kill proctree mid-cleanup and leave the host's auditing changed. So the
 * handlers stay until `release()`, after cleanup: a signal that arrives meanwhile is noted by
 * its handler, never fatal. Nor after: the command returns to `main.ts`, which exits at once,
 * and a signal landing in between ends nothing half done — so `release()` leaves a listener
 * that ignores it (commands run only from `main.ts`; the library installs no handlers).
 *
 * @module
 */

/** One signal and what to do on it. */
export type SignalHandler = [Deno.Signal, () => void];

const ignore = () => {};

/**
 * Registers `handlers` now; the function returned (call it after cleanup) replaces them with
 * listeners that ignore their signal until the process exits.
 */
export function holdSignals(handlers: readonly SignalHandler[]): () => void {
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    for (const [s, h] of handlers) {
      Deno.addSignalListener(s, ignore);
      Deno.removeSignalListener(s, h);
    }
  };
}
