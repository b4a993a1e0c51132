import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The node arguments pm2 starts the worker with, from ecosystem.config.js (BENCH_CHILD_NODE_ARGS overrides). */
export async function deployedNodeArgs(): Promise<string[]> {
  if (process.env.BENCH_CHILD_NODE_ARGS !== undefined) return process.env.BENCH_CHILD_NODE_ARGS.split(' ').filter(Boolean);
  const ecosystem = (await import(path.join(ROOT, 'ecosystem.config.js'))) as { apps: Array<{ node_args?: string[] }> };
  return ecosystem.apps[0]?.node_args ?? [];
}
