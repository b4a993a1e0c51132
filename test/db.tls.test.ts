import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { connect, knexConfigFor, type Knex } from '../src/db/connect.js';
import { parseDatabaseUrl } from '../src/db/url.js';
import { describeError } from '../src/errors.js';
import { makePki, mariadbAvailable, postgresBinDir, startTlsMariadb, startTlsPostgres, type Pki, type TlsServer } from './helpers/tlsServers.js';
import { ADMIN_URLS } from './helpers/databases.js';

/*
 * TLS modes, judged against real servers with TLS on (started from a temp directory with a
 * private CA) and against the shared servers, which have TLS off: does the connection use
 * TLS, and does verification accept and refuse what the mode says.
 */

const opensslPresent = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

async function tryConnect(url: string, probe: (db: Knex) => Promise<boolean>): Promise<{ ok: true; tls: boolean } | { ok: false; error: string }> {
  const db = connect(url, { poolMax: 1 });
  try {
    return { ok: true, tls: await probe(db) };
  } catch (err) {
    return { ok: false, error: describeError(err) };
  } finally {
    await db.destroy();
  }
}

const pgTls = async (db: Knex) => {
  const r = await db.raw('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  return r.rows[0]?.ssl === true;
};
const mysqlTls = async (db: Knex) => {
  const [rows] = await db.raw("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
  return String(rows[0]?.Value ?? '') !== '';
};

let pkiDir: string;
let pki: Pki;
beforeAll(() => {
  if (!opensslPresent) return;
  pkiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-pki-'));
  pki = makePki(pkiDir);
});
afterAll(() => {
  if (pkiDir) fs.rmSync(pkiDir, { recursive: true, force: true });
});

describe('TLS parameters map to driver options', () => {
  it('rejects unknown TLS parameters, bad modes and unreadable files, naming the field', () => {
    expect(() => parseDatabaseUrl('mysql://u@h/db?sslmode=require', 'source.url')).toThrow(/source\.url: unknown TLS parameter "sslmode" \(use ssl-mode/);
    expect(() => parseDatabaseUrl('postgres://u@h/db?ssl-mode=REQUIRED', 'source.url')).toThrow(/unknown TLS parameter "ssl-mode"/);
    expect(() => parseDatabaseUrl('postgres://u@h/db?sslmode=verify', 'state.url')).toThrow(/state\.url: sslmode "verify" is not one of disable, allow/);
    expect(() => parseDatabaseUrl('mysql://u@h/db?ssl-mode=strict', 'source.url')).toThrow(/ssl-mode "strict" is not one of DISABLED, PREFERRED/);
    expect(() => parseDatabaseUrl('postgres://u@h/db?sslmode=verify-ca&sslrootcert=/no/such/ca.pem', 'source.url')).toThrow(/sslrootcert file \/no\/such\/ca\.pem cannot be read/);
    expect(() => parseDatabaseUrl('postgres://u@h/db?sslmode=require&sslcert=/etc/hostname', 'source.url')).toThrow(/sslcert and sslkey go together/);
  });

  it('masks the client key passphrase in the URL it shows', () => {
    const t = parseDatabaseUrl(`postgres://u:pw@h/db?sslmode=require&sslpassword=KeyPass-991`);
    expect(t.tls.passphrase).toBe('KeyPass-991');
    expect(t.display).not.toContain('KeyPass-991');
    expect(parseDatabaseUrl('mysql://u@h/db?ssl-mode=REQUIRED&ssl-passphrase=KeyPass-992').display).not.toContain('KeyPass-992');
  });

  it('derives the mode as libpq and the mysql client do', () => {
    const mode = (url: string) => parseDatabaseUrl(url).tls.mode;
    expect(mode('postgres://u@h/db')).toBe('disable');
    expect(mode('postgres://u@h/db?sslmode=prefer')).toBe('prefer');
    expect(mode('postgres://u@h/db?sslmode=require')).toBe('require');
    // libpq: a root certificate makes `require` verify the chain.
    expect(mode('postgres://u@h/db?sslmode=require&sslrootcert=/etc/hostname')).toBe('verify-ca');
    expect(mode('postgres://u@h/db?sslmode=verify-full&sslrootcert=system')).toBe('verify-full');
    expect(mode('mysql://u@h/db')).toBe('disable');
    expect(mode('mysql://u@h/db?ssl-mode=required')).toBe('require');
    expect(mode('mysql://u@h/db?ssl-mode=VERIFY_IDENTITY')).toBe('verify-full');
    // mysql client: --ssl-ca without --ssl-mode means VERIFY_CA.
    expect(mode('mysql://u@h/db?ssl-ca=/etc/hostname')).toBe('verify-ca');
  });

  it('builds the driver ssl options of each fixed mode', () => {
    const ssl = (url: string) => (knexConfigFor(parseDatabaseUrl(url)).connection as { ssl?: Record<string, unknown> }).ssl;
    expect(ssl('postgres://u@h/db?sslmode=disable')).toBeUndefined();
    expect(ssl('postgres://u@h/db?sslmode=require')).toMatchObject({ rejectUnauthorized: false });
    const ca = ssl('postgres://u@h/db?sslmode=verify-ca&sslrootcert=/etc/hostname')!;
    expect(ca).toMatchObject({ rejectUnauthorized: true, ca: fs.readFileSync('/etc/hostname', 'utf8') });
    expect(typeof ca.checkServerIdentity).toBe('function');
    const full = ssl('postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/hostname')!;
    expect(full).toMatchObject({ rejectUnauthorized: true });
    expect(full.checkServerIdentity).toBeUndefined();
    expect(ssl('mysql://u@h/db?ssl-mode=REQUIRED')).toMatchObject({ rejectUnauthorized: false, verifyIdentity: false });
    expect(ssl('mysql://u@h/db?ssl-mode=VERIFY_CA&ssl-ca=/etc/hostname')).toMatchObject({ rejectUnauthorized: true, verifyIdentity: false, ca: fs.readFileSync('/etc/hostname', 'utf8') });
    expect(ssl('mysql://u@h/db?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/hostname')).toMatchObject({ rejectUnauthorized: true, verifyIdentity: true });
    // prefer and allow depend on the server: decided when connecting.
    expect(typeof knexConfigFor(parseDatabaseUrl('postgres://u@h/db?sslmode=prefer')).connection).toBe('function');
    expect(typeof knexConfigFor(parseDatabaseUrl('mysql://u@h/db?ssl-mode=PREFERRED')).connection).toBe('function');
  });
});

const pgLive = opensslPresent && postgresBinDir() !== undefined;
(pgLive ? describe : describe.skip)('PostgreSQL sslmode against a server with TLS on (private CA, certificate for "localhost")', () => {
  let server: TlsServer;
  beforeAll(async () => {
    server = await startTlsPostgres(pki);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });
  const url = (user: string, host: string, query: string) => `postgres://${user}@${host}:${server.port}/postgres?${query}`;

  it('disable: plain; a TLS-only user is refused', async () => {
    expect(await tryConnect(url('postgres', '127.0.0.1', 'sslmode=disable'), pgTls)).toEqual({ ok: true, tls: false });
    expect(await tryConnect(url('tlsonly', '127.0.0.1', 'sslmode=disable'), pgTls)).toMatchObject({ ok: false, error: expect.stringMatching(/no encryption/) });
  });

  it('allow: plain when the server takes it, TLS when it refuses plain', async () => {
    expect(await tryConnect(url('postgres', '127.0.0.1', 'sslmode=allow'), pgTls)).toEqual({ ok: true, tls: false });
    expect(await tryConnect(url('tlsonly', '127.0.0.1', 'sslmode=allow'), pgTls)).toEqual({ ok: true, tls: true });
  });

  it('prefer: TLS when the server offers it, plain when it does not', async () => {
    expect(await tryConnect(url('postgres', '127.0.0.1', 'sslmode=prefer'), pgTls)).toEqual({ ok: true, tls: true });
    const shared = new URL(ADMIN_URLS.pg);
    shared.searchParams.set('sslmode', 'prefer');
    expect(await tryConnect(shared.toString(), pgTls)).toEqual({ ok: true, tls: false });
  });

  it('require: TLS without verification (an unknown CA, a wrong name); refused by a server without TLS', async () => {
    expect(await tryConnect(url('postgres', '127.0.0.1', 'sslmode=require'), pgTls)).toEqual({ ok: true, tls: true });
    const shared = new URL(ADMIN_URLS.pg);
    shared.searchParams.set('sslmode', 'require');
    expect(await tryConnect(shared.toString(), pgTls)).toMatchObject({ ok: false, error: expect.stringMatching(/does not support SSL/) });
  });

  it('verify-ca: the chain is checked, the host name is not', async () => {
    expect(await tryConnect(url('postgres', '127.0.0.1', `sslmode=verify-ca&sslrootcert=${pki.ca}`), pgTls)).toEqual({ ok: true, tls: true });
    expect(await tryConnect(url('postgres', '127.0.0.1', `sslmode=verify-ca&sslrootcert=${pki.otherCa}`), pgTls)).toMatchObject({ ok: false, error: expect.stringMatching(/self[- ]signed|unable to (get|verify)/i) });
    // libpq: require with a root certificate verifies the chain too.
    expect(await tryConnect(url('postgres', '127.0.0.1', `sslmode=require&sslrootcert=${pki.otherCa}`), pgTls)).toMatchObject({ ok: false });
  });

  it('verify-full: chain and host name', async () => {
    expect(await tryConnect(url('postgres', 'localhost', `sslmode=verify-full&sslrootcert=${pki.ca}`), pgTls)).toEqual({ ok: true, tls: true });
    expect(await tryConnect(url('postgres', '127.0.0.1', `sslmode=verify-full&sslrootcert=${pki.ca}`), pgTls)).toMatchObject({ ok: false, error: expect.stringMatching(/altnames|does not match|IP: 127\.0\.0\.1/i) });
    expect(await tryConnect(url('postgres', 'localhost', `sslmode=verify-full&sslrootcert=${pki.otherCa}`), pgTls)).toMatchObject({ ok: false });
  });

  it('sslcert and sslkey: a client certificate the server requires', async () => {
    expect(await tryConnect(url('certuser', '127.0.0.1', `sslmode=verify-ca&sslrootcert=${pki.ca}&sslcert=${pki.clientCert}&sslkey=${pki.clientKey}`), pgTls)).toEqual({ ok: true, tls: true });
    expect(await tryConnect(url('certuser', '127.0.0.1', `sslmode=verify-ca&sslrootcert=${pki.ca}`), pgTls)).toMatchObject({ ok: false, error: expect.stringMatching(/certificate/i) });
  });
});

const myLive = opensslPresent && mariadbAvailable();
(myLive ? describe : describe.skip)('MySQL / MariaDB ssl-mode against a server with TLS on', () => {
  let server: TlsServer;
  beforeAll(async () => {
    server = await startTlsMariadb(pki);
  }, 90_000);
  afterAll(async () => {
    await server?.stop();
  });
  const url = (host: string, query: string) => `mysql://root@${host}:${server.port}/mysql?${query}`;
  const shared = (query: string) => `${ADMIN_URLS.mysql.replace(/\?.*$/, '')}?${query}`;

  it('no parameter and DISABLED: plain', async () => {
    expect(await tryConnect(url('127.0.0.1', '').replace(/\?$/, ''), mysqlTls)).toEqual({ ok: true, tls: false });
    expect(await tryConnect(url('127.0.0.1', 'ssl-mode=DISABLED'), mysqlTls)).toEqual({ ok: true, tls: false });
  });

  it('PREFERRED: TLS when the server offers it, plain when it does not', async () => {
    expect(await tryConnect(url('127.0.0.1', 'ssl-mode=PREFERRED'), mysqlTls)).toEqual({ ok: true, tls: true });
    expect(await tryConnect(shared('ssl-mode=PREFERRED'), mysqlTls)).toEqual({ ok: true, tls: false });
  });

  it('REQUIRED: TLS without verification; refused by a server without TLS', async () => {
    expect(await tryConnect(url('127.0.0.1', 'ssl-mode=REQUIRED'), mysqlTls)).toEqual({ ok: true, tls: true });
    expect(await tryConnect(shared('ssl-mode=REQUIRED'), mysqlTls)).toMatchObject({ ok: false, error: expect.stringMatching(/does not support secure connection/) });
  });

  it('VERIFY_CA: the chain is checked, the host name is not', async () => {
    expect(await tryConnect(url('127.0.0.1', `ssl-mode=VERIFY_CA&ssl-ca=${pki.ca}`), mysqlTls)).toEqual({ ok: true, tls: true });
    expect(await tryConnect(url('127.0.0.1', `ssl-mode=VERIFY_CA&ssl-ca=${pki.otherCa}`), mysqlTls)).toMatchObject({ ok: false });
  });

  it('VERIFY_IDENTITY: chain and host name', async () => {
    expect(await tryConnect(url('localhost', `ssl-mode=VERIFY_IDENTITY&ssl-ca=${pki.ca}`), mysqlTls)).toEqual({ ok: true, tls: true });
    expect(await tryConnect(url('127.0.0.1', `ssl-mode=VERIFY_IDENTITY&ssl-ca=${pki.ca}`), mysqlTls)).toMatchObject({ ok: false });
  });

  it('ssl-cert and ssl-key are presented', async () => {
    expect(await tryConnect(url('127.0.0.1', `ssl-mode=VERIFY_CA&ssl-ca=${pki.ca}&ssl-cert=${pki.clientCert}&ssl-key=${pki.clientKey}`), mysqlTls)).toEqual({ ok: true, tls: true });
  });
});
