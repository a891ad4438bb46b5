/**
 * One waiting request, as the queue links it (intrusive: the waiter carries its own
 * links, so joining and leaving allocate nothing and leaving from the middle — a
 * client that gives up — is O(1)).
 */
export interface Waiter {
  prev: Waiter | undefined
  next: Waiter | undefined
  /** The queue it waits in, while it waits. */
  queue: WaitQueue | undefined
  /** performance.now() when it joined. */
  queuedAt: number
}

/**
 * An upstream's FIFO of requests waiting for a free slot (HAProxy's per-server
 * pending queue, `pendconn`). Every waiter shares one timeout, so they expire in
 * the order they joined: one timer for the head is enough (forward/admission.ts).
 */
export class WaitQueue {
  head: Waiter | undefined = undefined
  tail: Waiter | undefined = undefined
  length = 0
  /** The head's deadline timer, while anyone waits. */
  timer: NodeJS.Timeout | undefined = undefined
  /** A pass that hands freed slots to waiters is scheduled. */
  pumping = false

  push (w: Waiter): void {
    w.queue = this
    w.next = undefined
    w.prev = this.tail
    if (this.tail === undefined) this.head = w
    else this.tail.next = w
    this.tail = w
    this.length++
  }

  shift (): Waiter | undefined {
    const w = this.head
    if (w !== undefined) this.remove(w)
    return w
  }

  remove (w: Waiter): void {
    if (w.queue !== this) return
    if (w.prev === undefined) this.head = w.next
    else w.prev.next = w.next
    if (w.next === undefined) this.tail = w.prev
    else w.next.prev = w.prev
    w.prev = w.next = w.queue = undefined
    this.length--
  }
}
