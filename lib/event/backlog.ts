/**
 * The backlog between the connector's reader thread and the processing side: one writer,
 * one reader, over shared memory (a `SharedArrayBuffer` of control words and one of bytes).
 *
 * The reader thread copies each datagram in as it arrives (while the loop is behind), so the
 * kernel's socket queue is emptied even while the processing side is behind; the processing side takes them out in
 * the same order. The bytes are a ring of entries, each a little-endian u32 word and, for a
 * datagram, its bytes padded to 4:
 *
 * - `length` (≤ {@linkcode MAX_ENTRY_BYTES}): a datagram of that many bytes follows;
 * - {@linkcode MARK.wrap}: nothing more before the end, the next entry is at offset 0;
 * - {@linkcode MARK.overrun}: the kernel said ENOBUFS here (its queue overflowed);
 * - {@linkcode MARK.dropped}, then a u32 count: that many datagrams did not fit the ring here.
 *
 * A full ring drops the datagram and counts it, and the count goes in as a mark before the
 * next one that fits, so the processing side learns of the loss at its place in the stream
 * (the connector's `cn_msg.seq` gaps then count the events exactly).
 *
 * {@linkcode backlogWrite} runs in the reader thread, whose source is this function's own
 * text (`ffi/source/connector_reader.ts`): it must use nothing from outside its body but its
 * parameters, {@linkcode CTL} and {@linkcode MARK} (which that thread defines too).
 *
 * @module
 */

/** Indices of the control words (an `Int32Array` of {@linkcode CTL.words}). */
export const CTL = {
  /** Byte offset of the next entry the writer puts in (published after the entry). */
  head: 0,
  /** Byte offset of the next entry the reader takes out. */
  tail: 1,
  /** 1 while a thread reads the socket: whoever holds it, no datagram is between the two. */
  lock: 2,
  /** Set by the processing side: the reader thread ends. */
  stop: 3,
  /** The reader thread's state: {@linkcode READER_STATE}. */
  state: 4,
  /** The reader thread's kernel thread id. */
  tid: 5,
  /** The errno that ended the reader thread (0: none). */
  error: 6,
  /** Datagrams the reader thread received from the kernel. */
  datagrams: 7,
  /** ENOBUFS reports (the kernel's queue overflowed). */
  overruns: 8,
  /** Datagrams not from the kernel (dropped). */
  foreign: 9,
  /** Datagrams cut short by their slot. */
  truncated: 10,
  /** Datagrams dropped because the ring was full. */
  dropped: 11,
  /** The nice value the reader thread runs at (what `setpriority` gave it). */
  nice: 12,
  /** 1 while the reader thread reads (the loop is behind); 0: it sleeps on this word. */
  armed: 13,
  /** Number of control words. */
  words: 16,
} as const;

/** {@linkcode CTL.state} values. */
export const READER_STATE = { starting: 0, running: 1, exited: 2 } as const;

/** Entry words that are not a datagram's length (as `getUint32` reads them). */
export const MARK = { wrap: 0xffffffff, overrun: 0xfffffffe, dropped: 0xfffffffd } as const;

/** The longest datagram an entry holds (a kernel proc event is 76 bytes). */
export const MAX_ENTRY_BYTES = 512;

/**
 * Puts one entry in: `word` (a length or a {@linkcode MARK}) and `len` bytes of `src` from
 * `from` (for {@linkcode MARK.dropped}, 4 bytes holding the count). False when it does not
 * fit now. The entry is published (head moved) only once written. Runs in the reader thread.
 */
export function backlogWrite(
  ctl: Int32Array,
  view: DataView,
  bytes: Uint8Array,
  word: number,
  src: Uint8Array,
  from: number,
  len: number,
): boolean {
  const capacity = bytes.length;
  const need = 4 + ((len + 3) & ~3);
  let head = Atomics.load(ctl, CTL.head);
  const tail = Atomics.load(ctl, CTL.tail);
  // 4 bytes always stay free before the tail (full is not empty) and before the end (room
  // for a wrap word).
  if (tail > head) {
    if (tail - head - 4 < need) return false;
  } else if (capacity - head - 4 < need) {
    if (tail - 4 < need) return false;
    view.setUint32(head, MARK.wrap, true);
    head = 0;
  }
  view.setUint32(head, word >>> 0, true);
  if (len > 0) bytes.set(src.subarray(from, from + len), head + 4);
  Atomics.store(ctl, CTL.head, head + need);
  return true;
}

/** What {@linkcode backlogRead} hands on. */
export interface BacklogVisitor {
  /** A datagram: bytes `[offset, offset + length)` of `view`, valid during the call. */
  datagram(view: DataView, offset: number, length: number): void;
  /** The kernel's queue overflowed here, or `dropped` datagrams did not fit the ring. */
  loss(kind: "overrun" | "dropped", dropped: number): void;
}

/**
 * Takes out up to `max` datagrams (marks do not count), in order; returns how many. Frees
 * each entry's room once it was handed on.
 */
export function backlogRead(
  ctl: Int32Array,
  view: DataView,
  capacity: number,
  max: number,
  visit: BacklogVisitor,
): number {
  let taken = 0;
  let tail = Atomics.load(ctl, CTL.tail);
  let head = Atomics.load(ctl, CTL.head);
  while (taken < max) {
    if (tail === head) {
      head = Atomics.load(ctl, CTL.head);
      if (tail === head) break;
    }
    const word = view.getUint32(tail, true);
    if (word === MARK.wrap) {
      tail = 0;
      continue;
    }
    let len = 0;
    if (word === MARK.overrun) visit.loss("overrun", 0);
    else if (word === MARK.dropped) {
      len = 4;
      visit.loss("dropped", view.getUint32(tail + 4, true));
    } else if (word <= MAX_ENTRY_BYTES && tail + 4 + word <= capacity) {
      len = word;
      visit.datagram(view, tail + 4, word);
      taken++;
    } else {
      throw new Error(`backlog: bad entry word ${word} at ${tail}`);
    }
    tail += 4 + ((len + 3) & ~3);
    Atomics.store(ctl, CTL.tail, tail);
  }
  return taken;
}

/** True when entries wait (the reader has not taken everything the writer published). */
export function backlogPending(ctl: Int32Array): boolean {
  return Atomics.load(ctl, CTL.head) !== Atomics.load(ctl, CTL.tail);
}

/**
 * Takes the socket lock (see {@linkcode CTL.lock}): held only around a non-blocking read and
 * its copy, so a wait is short. Runs in both threads.
 */
export function backlogLock(ctl: Int32Array): void {
  while (Atomics.compareExchange(ctl, CTL.lock, 0, 1) !== 0) Atomics.wait(ctl, CTL.lock, 1, 5);
}

/** Releases the socket lock. Runs in both threads. */
export function backlogUnlock(ctl: Int32Array): void {
  Atomics.store(ctl, CTL.lock, 0);
  Atomics.notify(ctl, CTL.lock, 1);
}
