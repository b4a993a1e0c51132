import type { Knex } from 'knex';
import type { FeishuClient } from '../feishu/client.js';
import type { EmployeeType } from '../feishu/schema.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { StateTables } from '../state/tables.js';
import type { RetryLayer } from '../retryPolicy.js';

export interface SendCounts {
  sent: number;
  retried: number;
  failed: number;
  dead: number;
  /** Auth or quota trouble stopped sending for this cycle. */
  halted: number;
  /** Why sending was halted (one line for `status` and /healthz). */
  haltReason?: string;
}

export interface SenderOptions {
  readonly state: Knex;
  readonly t: StateTables;
  readonly client: FeishuClient;
  readonly employeeType: EmployeeType;
  /** sync.namespace: part of every idempotency key. */
  readonly namespace: string;
  readonly owner: string;
  readonly concurrency: number;
  /** The operation layer of the retry policy (`retryPolicyFromConfig(…).operation`). */
  readonly retry: RetryLayer;
  /** Lease of a claimed operation; a crashed sender's operations are reclaimed after it. */
  readonly leaseMs: number;
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
  readonly random?: () => number;
}
