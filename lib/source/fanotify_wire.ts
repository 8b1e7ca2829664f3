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
  /** Report file handles instead of descriptors (FID mode, Linux ≥ 5.1). */
  REPORT_FID: 0x200,
  /** …and the directory's handle (≥ 5.9). */
  REPORT_DIR_FID: 0x400,
  /** …and the entry's name in it (≥ 5.9). */
  REPORT_NAME: 0x800,
  /** …and the child's own handle for directory-entry events (≥ 5.17). */
  REPORT_TARGET_FID: 0x1000,
} as const;

/** `fanotify_mark` flags. */
export const FAN_MARK = { ADD: 0x1, ONLYDIR: 0x8, MOUNT: 0x10, FILESYSTEM: 0x100 } as const;

/** Event mask bits. */
export const FAN_EVENT = {
  ATTRIB: 0x4,
  CLOSE_WRITE: 0x8,
  CREATE: 0x100,
  DELETE: 0x200,
  OPEN_EXEC: 0x1000,
  Q_OVERFLOW: 0x4000,
  EVENT_ON_CHILD: 0x08000000,
  /** One event for a rename, with the old and the new directory and name (≥ 5.17). */
  RENAME: 0x10000000,
  /** The object is a directory. */
  ONDIR: 0x40000000,
} as const;

/** Info record types that follow the metadata in FID mode. */
export const FAN_INFO = {
  FID: 1,
  DFID_NAME: 2,
  DFID: 3,
  OLD_DFID_NAME: 10,
  NEW_DFID_NAME: 12,
} as const;

/**
 * An info record: `u8 type | u8 pad | u16 len`, then `__kernel_fsid_t` (8 bytes), then
 * `struct file_handle` (`u32 handle_bytes | s32 handle_type | f_handle[handle_bytes]`),
 * then, for the `…_NAME` types, the entry's name and a NUL.
 */
export const FAN_INFO_FID = { type: 0, len: 2, fsid: 4, handle: 12, handleHeader: 8 } as const;

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
  return eachRecord(view, length, (at) => {
    out.push({
      // The bits proctree asks for are in the low 32 of the u64 mask.
      mask: view.getUint32(at + FAN_METADATA.mask, true),
      fd: view.getInt32(at + FAN_METADATA.fd, true),
      pid: view.getInt32(at + FAN_METADATA.pid, true),
    });
  });
}

/**
 * Calls `each(at, len)` for every whole record in `view[0…length)`; a record of another
 * metadata version, or whose length is impossible, ends the walk. Returns the bytes walked.
 */
function eachRecord(
  view: DataView,
  length: number,
  each: (at: number, len: number) => void,
): number {
  let at = 0;
  while (at + FAN_METADATA.size <= length) {
    const len = view.getUint32(at + FAN_METADATA.eventLen, true);
    const vers = view.getUint8(at + FAN_METADATA.vers);
    if (vers !== FANOTIFY_METADATA_VERSION || len < FAN_METADATA.size || at + len > length) break;
    each(at, len);
    at += len;
  }
  return at;
}

/** A file handle as the kernel gave it: `struct file_handle`, whole (for `open_by_handle_at`). */
export interface FanHandle {
  /** `fsid` and the handle's bytes, as text: equal keys are the same object. */
  key: string;
  /** `struct file_handle` bytes. */
  bytes: Uint8Array;
}

/** One event of a FID-mode group. */
export interface FidEvent {
  /** Event bits (`FAN_EVENT`). */
  mask: number;
  /** The process that caused it. */
  pid: number;
  /** The directory of the entry (for a rename, the old one); null when not reported. */
  dir: FanHandle | null;
  /** The entry's name bytes in `dir`; null when not reported. */
  name: Uint8Array | null;
  /** A rename's new directory. */
  newDir: FanHandle | null;
  /** A rename's new name bytes. */
  newName: Uint8Array | null;
  /** The object itself (`FAN_REPORT_FID`/`TARGET_FID`). */
  self: FanHandle | null;
}

const hex2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * The key of a file handle: `fsid` (8 bytes) and the `struct file_handle` bytes after its
 * length (type, then the handle), as hex. Events and lookups build it here alone: equal
 * keys must mean the same object.
 */
export function handleKey(fsid: Uint8Array, handle: Uint8Array): string {
  return `${hexOf(fsid)}:${hexOf(handle.subarray(4))}`;
}

/** `bytes` as lowercase hex. */
export function hexOf(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += hex2[b];
  return s;
}

function handleAt(view: DataView, at: number, end: number): { h: FanHandle; next: number } | null {
  const hb = at + FAN_INFO_FID.handle;
  if (hb + FAN_INFO_FID.handleHeader > end) return null;
  const n = view.getUint32(hb, true);
  const total = FAN_INFO_FID.handleHeader + n;
  if (hb + total > end) return null;
  const bytes = new Uint8Array(view.buffer, view.byteOffset + hb, total).slice();
  const fsid = new Uint8Array(view.buffer, view.byteOffset + at + FAN_INFO_FID.fsid, 8);
  return { h: { key: handleKey(fsid, bytes), bytes }, next: hb + total };
}

function nameAt(view: DataView, at: number, end: number): Uint8Array | null {
  const raw = new Uint8Array(view.buffer, view.byteOffset + at, Math.max(0, end - at));
  const nul = raw.indexOf(0);
  return nul <= 0 ? null : raw.slice(0, nul);
}

/**
 * Decodes FID-mode events (metadata, then info records) in `view[0…length)` into `out`;
 * returns the bytes decoded (less than `length` when a record is malformed).
 */
export function decodeFidEvents(view: DataView, length: number, out: FidEvent[]): number {
  return eachRecord(view, length, (at, len) => {
    const ev: FidEvent = {
      mask: view.getUint32(at + FAN_METADATA.mask, true),
      pid: view.getInt32(at + FAN_METADATA.pid, true),
      dir: null,
      name: null,
      newDir: null,
      newName: null,
      self: null,
    };
    const end = at + len;
    let info = at + view.getUint16(at + FAN_METADATA.metadataLen, true);
    while (info + 4 <= end) {
      const type = view.getUint8(info + FAN_INFO_FID.type);
      const ilen = view.getUint16(info + FAN_INFO_FID.len, true);
      if (ilen < 4 || info + ilen > end) break;
      const got = handleAt(view, info, info + ilen);
      if (got) {
        const name = () => nameAt(view, got.next, info + ilen);
        if (type === FAN_INFO.FID) ev.self = got.h;
        else if (type === FAN_INFO.DFID) ev.dir = got.h;
        else if (type === FAN_INFO.DFID_NAME || type === FAN_INFO.OLD_DFID_NAME) {
          ev.dir = got.h;
          ev.name = name();
        } else if (type === FAN_INFO.NEW_DFID_NAME) {
          ev.newDir = got.h;
          ev.newName = name();
        }
      }
      info += ilen;
    }
    out.push(ev);
  });
}
