import { PassThrough } from 'node:stream';
import { createLogger } from '../src/log/logger.js';
import { redact, clearSecretsForTests } from '../src/log/redact.js';
import { resolveConfig } from '../src/config/load.js';
import { connect } from '../src/db/connect.js';
import { describeError } from '../src/errors.js';
import { baseRawConfig } from './helpers/config.js';

const APP_SECRET = 'AppSecret-7f3e9c1a2b';
const DB_PASSWORD = 'DbPassw0rd-91x';
const TOKEN = 't-g1044ghJK7OPQRSTUVWXYZabcdef0123';

function capture() {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { stream, text: () => chunks.join('') };
}

describe('secrets never reach a log line or an error message', () => {
  afterAll(() => clearSecretsForTests());

  it('redacts the app secret, a token and a DB password set in config, including a failed DB connection', async () => {
    const raw = baseRawConfig();
    raw.feishu.app_secret = APP_SECRET;
    // A port nothing listens on: the connection fails.
    raw.source.url = `mysql://sync:${DB_PASSWORD}@127.0.0.1:1/hr`;
    raw.state = { url: `postgres://sync:${DB_PASSWORD}@127.0.0.1:1/state` };
    const cfg = resolveConfig(raw, { env: {} });

    const out = capture();
    const logger = createLogger({ format: 'json', stream: out.stream, level: 'debug' });
    logger.info('starting', { config: cfg });
    logger.info(`token fetched: ${TOKEN}`);
    logger.debug('request', { headers: { Authorization: `Bearer ${TOKEN}` }, url: cfg.source.url });

    const errors: string[] = [];
    for (const url of [cfg.source.url, cfg.state.url]) {
      const db = connect(url);
      try {
        await db.raw('select 1');
        throw new Error('expected the connection to fail');
      } catch (err) {
        errors.push(redact(describeError(err)));
        logger.error('database unreachable', { err, url });
      } finally {
        await db.destroy();
      }
    }
    logger.error(new Error(`feishu said no for secret ${APP_SECRET}`));
    await new Promise((r) => setTimeout(r, 50));

    const text = out.text() + errors.join('\n');
    expect(out.text().split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(6);
    for (const secret of [APP_SECRET, DB_PASSWORD, TOKEN]) expect(text).not.toContain(secret);
    expect(text).toContain('[REDACTED]');
    expect(errors.every((e) => /ECONNREFUSED|connect/i.test(e))).toBe(true);
  });

  it('pretty format is redacted too', async () => {
    const out = capture();
    const logger = createLogger({ format: 'pretty', stream: out.stream });
    logger.warn(`Bearer ${TOKEN}`, { secret: 'whatever-value' });
    await new Promise((r) => setTimeout(r, 20));
    expect(out.text()).toContain('warn');
    expect(out.text()).not.toContain(TOKEN);
    expect(out.text()).not.toContain('whatever-value');
  });
});
