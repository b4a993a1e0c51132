/**
 * Give the event loop a turn. better-sqlite3 answers every query synchronously, so on SQLite
 * a cycle is one unbroken chain of promise continuations: timers (the lease renewal),
 * signals, `/healthz`, aborts and the logger's stream (whose buffered lines pile up in the
 * heap) all wait until it ends. Long loops call this between pages and batches; on
 * PostgreSQL and MySQL, whose queries are I/O, it costs next to nothing.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
