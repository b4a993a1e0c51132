import type { AddressInfo } from 'node:net';
import { EmulatorServer, type EmulatorStats } from './server.js';
import type { LedgerEntry } from './ledger.js';
import type { EmulatorOptions } from './options.js';
import type { Kind } from '../kinds.js';

export { parseFaults, DEFAULT_OPTIONS, FAULT_KINDS, type EmulatorOptions, type FaultSpec, type FaultKind } from './options.js';
export type { EmulatorStats } from './server.js';
export type { LedgerEntry } from './ledger.js';

/** A running emulator: its URL and credentials, and the introspection tests use. */
export interface Emulator {
  readonly url: string;
  readonly appId: string;
  readonly appSecret: string;
  ledger(): LedgerEntry[];
  /** How often each idempotent_id was posted. */
  posts(): Record<string, number>;
  stats(): EmulatorStats;
  /** Attendance calls being answered right now. */
  inFlight(): number;
  /** Every tenant access token issued so far. */
  issuedTokens(): string[];
  reset(): void;
  setOptions(partial: Partial<EmulatorOptions>): void;
  /**
   * Hold every attendance answer, once its latency has passed, until the returned function is
   * called: calls stay in flight for exactly as long as a test needs, whatever the machine's speed.
   */
  holdAnswers(): () => void;
  /** Console actions: an admin withdraws, edits or creates an approval; or Feishu loses one. */
  admin: {
    revoke(approvalId: string): boolean;
    edit(approvalId: string, fields: Record<string, unknown>): boolean;
    create(o: { userId: string; kind: Kind; item: Record<string, unknown>; date?: string }): string;
    delete(approvalId: string): boolean;
  };
  close(): Promise<void>;
}

export async function startEmulator(options: Partial<EmulatorOptions> = {}): Promise<Emulator> {
  const emu = new EmulatorServer(options);
  await new Promise<void>((resolve, reject) => {
    emu.server.once('error', reject);
    emu.server.listen(emu.opts.port, emu.opts.host, () => resolve());
  });
  const { port } = emu.server.address() as AddressInfo;
  return {
    url: `http://${emu.opts.host}:${port}`,
    get appId() {
      return emu.opts.appId;
    },
    get appSecret() {
      return emu.opts.appSecret;
    },
    ledger: () => emu.ledger.all().map((e) => ({ ...e })),
    posts: () => emu.ledger.postCounts(),
    stats: () => emu.stats(),
    inFlight: () => emu.inFlight,
    issuedTokens: () => emu.issuedTokens(),
    reset: () => emu.reset(),
    setOptions: (p) => emu.setOptions(p),
    holdAnswers: () => emu.holdAnswers(),
    admin: {
      revoke: (id) => emu.admin.revoke(id),
      edit: (id, fields) => emu.admin.edit(id, fields),
      create: (o) => emu.admin.create(o),
      delete: (id) => emu.admin.delete(id),
    },
    close: () =>
      new Promise<void>((resolve) => {
        emu.server.closeAllConnections();
        emu.server.close(() => resolve());
      }),
  };
}
