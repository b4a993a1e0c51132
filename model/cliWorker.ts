import { parentPort } from 'node:worker_threads';
import { setClockOffset } from './clock.js';
import { main } from '../src/cli/main.js';

/*
 * The CLI's entry point (`main`, what dist/src/cli/index.js calls) in a worker thread of the
 * model test: as fast as a call in the harness's own thread, but a command that never ends
 * (a cycle looping over the same pages, which on SQLite never yields to a timer) can be
 * stopped from outside with `terminate()`.
 */

interface Request {
  readonly id: number;
  readonly args: readonly string[];
  readonly clockOffsetMs: number;
}

const port = parentPort!;
port.on('message', (m: Request) => {
  void (async () => {
    setClockOffset(m.clockOffsetMs);
    let out = '';
    const capture = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    }) as typeof process.stdout.write;
    process.stdout.write = capture;
    process.stderr.write = capture;
    const code = await main(['node', 'attendance-sync', ...m.args]);
    port.postMessage({ id: m.id, code, out });
  })();
});
