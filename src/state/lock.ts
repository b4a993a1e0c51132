import type { Knex } from 'knex';
import { dialectFor, type SessionLockSql } from '../db/dialect.js';
import type { StateTables } from './tables.js';
import { toMillis } from './values.js';

/**
 * One active worker per state database.
 *
 * PostgreSQL (pg_try_advisory_lock) and MySQL / MariaDB (GET_LOCK) hold a session lock on a
 * connection kept for the lock's lifetime: if the process dies, the server ends the session
 * and the lock is free at once. SQLite has no such lock, so a lease row in the lock table is
 * taken when absent or expired and extended by each renewal; a crashed holder's lease
 * simply runs out. On every dialect the lock row also says who holds it, for `status`.
 */
export interface LeaderLock {
  readonly owner: string;
  /** Take the lock if free; true when this owner holds it afterwards. */
  tryAcquire(): Promise<boolean>;
  /** Confirm and extend; false means leadership is lost and sending must stop. */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

export interface LockHolder {
  readonly owner: string;
  readonly leaseUntil: number;
  readonly heartbeatAt: number;
  readonly acquiredAt: number;
}

type Conn = unknown;

async function upsertLeaseRow(db: Knex, t: StateTables, name: string, owner: string, leaseMs: number, now: number): Promise<void> {
  await db(t.lock)
    .insert({ name, owner, lease_until: now + leaseMs, acquired_at: now, heartbeat_at: now })
    .onConflict('name')
    .merge(['owner', 'lease_until', 'acquired_at', 'heartbeat_at']);
}

class SessionLock implements LeaderLock {
  private conn: Conn | null = null;

  constructor(
    private readonly db: Knex,
    private readonly t: StateTables,
    private readonly name: string,
    readonly owner: string,
    private readonly leaseMs: number,
    private readonly sql: SessionLockSql,
  ) {}

  private async query<T>(sql: string, bindings: readonly Knex.Value[]): Promise<T[]> {
    return this.sql.rows<T>(await this.db.raw(sql, bindings).connection(this.conn));
  }

  async tryAcquire(): Promise<boolean> {
    if (this.conn) return this.renew();
    this.conn = (await this.db.client.acquireConnection()) as Conn;
    try {
      const [row] = await this.query<{ got: unknown }>(this.sql.tryLock, [this.name]);
      const got = this.sql.isTrue(row?.got);
      if (!got) {
        await this.dropConnection();
        return false;
      }
      await upsertLeaseRow(this.db, this.t, this.name, this.owner, this.leaseMs, Date.now());
      return true;
    } catch (err) {
      await this.dropConnection();
      throw err;
    }
  }

  async renew(): Promise<boolean> {
    if (!this.conn) return false;
    try {
      const [row] = await this.query<{ mine: unknown }>(this.sql.holds, [this.name]);
      const mine = this.sql.isTrue(row?.mine);
      if (!mine) {
        await this.dropConnection();
        return false;
      }
      const now = Date.now();
      await this.db(this.t.lock).where({ name: this.name }).update({ owner: this.owner, heartbeat_at: now, lease_until: now + this.leaseMs });
      return true;
    } catch {
      // The session is gone (killed, network): the server has released the lock.
      await this.dropConnection();
      return false;
    }
  }

  async release(): Promise<void> {
    if (!this.conn) return;
    try {
      await this.query(this.sql.unlock, [this.name]);
      await this.db(this.t.lock).where({ name: this.name, owner: this.owner }).delete();
    } finally {
      await this.dropConnection();
    }
  }

  private async dropConnection(): Promise<void> {
    const conn = this.conn;
    this.conn = null;
    if (conn) {
      try {
        await this.db.client.releaseConnection(conn);
      } catch {
        /* a broken connection is discarded by the pool */
      }
    }
  }
}

class LeaseLock implements LeaderLock {
  constructor(
    private readonly db: Knex,
    private readonly t: StateTables,
    private readonly name: string,
    readonly owner: string,
    private readonly leaseMs: number,
  ) {}

  async tryAcquire(): Promise<boolean> {
    const now = Date.now();
    return this.db.transaction(async (trx) => {
      const row = (await trx(this.t.lock).where({ name: this.name }).first()) as { owner: string; lease_until: number | string } | undefined;
      if (row && row.owner !== this.owner && (toMillis(row.lease_until) ?? 0) >= now) return false;
      await upsertLeaseRow(trx, this.t, this.name, this.owner, this.leaseMs, now);
      return true;
    });
  }

  async renew(): Promise<boolean> {
    const now = Date.now();
    const n = await this.db(this.t.lock)
      .where({ name: this.name, owner: this.owner })
      .andWhere('lease_until', '>=', now)
      .update({ lease_until: now + this.leaseMs, heartbeat_at: now });
    return n > 0;
  }

  async release(): Promise<void> {
    await this.db(this.t.lock).where({ name: this.name, owner: this.owner }).delete();
  }
}

export function createLeaderLock(db: Knex, t: StateTables, o: { name?: string; owner: string; leaseMs: number }): LeaderLock {
  const name = o.name ?? `${t.prefix}worker`;
  const sessionLock = dialectFor(db).sessionLock;
  if (!sessionLock) return new LeaseLock(db, t, name, o.owner, o.leaseMs);
  return new SessionLock(db, t, name, o.owner, o.leaseMs, sessionLock);
}

/**
 * Renew a held lock every third of its lease until `stop()`: for commands that hold the lock
 * through one long piece of work (`once`, `backfill`); the daemon renews on its own heartbeat.
 * The work yields to the event loop between pages, so the renewal runs on time even on
 * SQLite, whose lease would otherwise run out under a long cycle and let a second worker in.
 * `onLost` is called once when a renewal fails: the work must stop sending.
 */
export function keepLease(lock: Pick<LeaderLock, 'renew'>, leaseMs: number, onLost: () => void): { stop(): void } {
  let busy = false;
  let lost = false;
  const timer = setInterval(() => {
    if (busy || lost) return;
    busy = true;
    lock
      .renew()
      .then((ok) => ok, () => false)
      .then((ok) => {
        busy = false;
        if (!ok && !lost) {
          lost = true;
          onLost();
        }
      });
  }, Math.max(500, Math.floor(leaseMs / 3)));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** Who holds (or last held) the lock, for `status`. */
export async function lockHolder(db: Knex, t: StateTables, name = `${t.prefix}worker`): Promise<LockHolder | null> {
  const row = (await db(t.lock).where({ name }).first()) as Record<string, number | string> | undefined;
  if (!row) return null;
  return {
    owner: String(row.owner),
    leaseUntil: toMillis(row.lease_until) ?? 0,
    heartbeatAt: toMillis(row.heartbeat_at) ?? 0,
    acquiredAt: toMillis(row.acquired_at) ?? 0,
  };
}
