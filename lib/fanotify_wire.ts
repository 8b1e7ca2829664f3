/**
 * The fanotify ABI proctree uses (`linux/fanotify.h`), in one table, and the decoder of the
 * event records `read(2)` returns from a fanotify group. Pure; tested on byte fixtures.
 *
 * @module
 */

/** `fanotify_init` flags. */
export const FAN_INIT = {
  CLASS_NOTIF: 0x0,
  CLOEXEC: 0x1,
  NONBLOCK: 0x2,
  UNLIMITED_QUEUE: 0x10,
} as const;

/** `fanotify_mark` flags. */
export const FAN_MARK = { ADD: 0x1, MOUNT: 0x10, FILESYSTEM: 0x100 } as const;

/** Event mask bits. */
export const FAN_EVENT = { OPEN_EXEC: 0x1000, Q_OVERFLOW: 0x4000 } as const;

/** `struct fanotify_event_metadata`: 24 bytes, then (in FID modes) info records. */
export const FAN_METADATA = {
  size: 24,
  eventLen: 0, // u32
  vers: 4, // u8
  metadataLen: 6, // u16
  mask: 8, // u64
  fd: 16, // s32
  pid: 20, // s32
} as const;

/** The metadata version this layout describes (`FANOTIFY_METADATA_VERSION`). */
export const FANOTIFY_METADATA_VERSION = 3;

/** `fd` of an event that carries no file (`FAN_NOFD`), e.g. a queue overflow. */
export const FAN_NOFD = -1;

/** One decoded fanotify event. */
export interface FanEvent {
  /** Event bits (`FAN_EVENT`). */
  mask: number;
  /** A descriptor of the file, open in the reader; {@linkcode FAN_NOFD} when none. */
  fd: number;
  /** The process that caused the event (its thread group id). */
  pid: number;
}

/**
 * Decodes the records in `bytes[0…length)` into `out`. A record of another metadata
 * version, or whose length is impossible, ends decoding: returns the number of bytes
 * decoded (less than `length` then) so the caller can report it.
 */
export function decodeFanEvents(view: DataView, length: number, out: FanEvent[]): number {
  let at = 0;
  while (at + FAN_METADATA.size <= length) {
    const len = view.getUint32(at + FAN_METADATA.eventLen, true);
    const vers = view.getUint8(at + FAN_METADATA.vers);
    if (vers !== FANOTIFY_METADATA_VERSION || len < FAN_METADATA.size || at + len > length) break;
    out.push({
      // The bits proctree asks for are in the low 32 of the u64 mask.
      mask: view.getUint32(at + FAN_METADATA.mask, true),
      fd: view.getInt32(at + FAN_METADATA.fd, true),
      pid: view.getInt32(at + FAN_METADATA.pid, true),
    });
    at += len;
  }
  return at;
}
