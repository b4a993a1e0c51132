import type { Command } from 'commander';
import { register as migrate } from './migrate.js';
import { register as checkConfig } from './check-config.js';
import { register as emulator } from './emulator.js';
import { register as once } from './once.js';
import { register as run } from './run.js';
import { register as status } from './status.js';
import { register as retry } from './retry.js';
import { register as backfill } from './backfill.js';
import { register as preview } from './preview.js';
import { register as demo } from './demo.js';
import { register as configReference } from './config-reference.js';
import { register as rebindTenant } from './rebind-tenant.js';
import { register as reconcile } from './reconcile.js';

/** Every subcommand, in the order --help lists them. */
export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  migrate, checkConfig, once, run, status, retry, backfill, reconcile, rebindTenant, preview, emulator, demo, configReference,
];
