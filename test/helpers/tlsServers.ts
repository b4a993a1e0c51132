import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

/*
 * Throw-away database servers with TLS on, for the TLS-mode tests: a private CA, a server
 * certificate for "localhost" only (so 127.0.0.1 fails a host name check), a second CA that
 * signed nothing, and a client certificate. The servers run from a temp directory on a free
 * port, never touching the shared servers of the other suites.
 */

export interface Pki {
  readonly dir: string;
  readonly ca: string;
  readonly otherCa: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

const isRoot = process.getuid?.() === 0;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' });
}

export function makePki(dir: string): Pki {
  const f = (n: string) => path.join(dir, n);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=attendance-sync test CA'], dir);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.crt', '-days', '2', '-subj', '/CN=some other CA'], dir);
  fs.writeFileSync(f('server.ext'), 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=certuser'], dir);
  openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2'], dir);
  return { dir, ca: f('ca.crt'), otherCa: f('other.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key') };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function asUser(user: string, cmd: string, args: string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', user, '--', cmd, ...args]] : [cmd, args];
}

async function waitForPort(port: number, child: ChildProcess, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not listen on ${port} within ${ms} ms`);
}

export interface TlsServer {
  readonly port: number;
  stop(): Promise<void>;
}

export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], 'bin') : undefined;
}

/**
 * PostgreSQL with ssl=on. pg_hba: user `certuser` must present a client certificate,
 * user `tlsonly` must use TLS, everyone else may connect either way (trust).
 */
export async function startTlsPostgres(pki: Pki): Promise<TlsServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-pg-'));
  const data = path.join(dir, 'data');
  for (const [from, to] of [
    [pki.serverCert, 'server.crt'],
    [pki.serverKey, 'server.key'],
    [pki.ca, 'ca.crt'],
  ] as const)
    fs.copyFileSync(from, path.join(dir, to));
  fs.chmodSync(path.join(dir, 'server.key'), 0o600);
  if (isRoot) execFileSync('chown', ['-R', 'postgres', dir]);
  const [initCmd, initArgs] = asUser('postgres', path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  execFileSync(initCmd, initArgs, { stdio: 'ignore' });
  const port = await freePort();
  fs.appendFileSync(
    path.join(data, 'postgresql.conf'),
    [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dir}'`,
      'ssl = on',
      `ssl_cert_file = '${path.join(dir, 'server.crt')}'`,
      `ssl_key_file = '${path.join(dir, 'server.key')}'`,
      `ssl_ca_file = '${path.join(dir, 'ca.crt')}'`,
      'fsync = off',
      'shared_buffers = 16MB',
      'max_connections = 20',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(data, 'pg_hba.conf'),
    ['local all all trust', 'hostssl all certuser 127.0.0.1/32 cert', 'hostssl all tlsonly 127.0.0.1/32 trust', 'host all postgres 127.0.0.1/32 trust', ''].join('\n'),
  );
  const [cmd, args] = asUser('postgres', path.join(bin, 'postgres'), ['-D', data]);
  const child = spawn(cmd, args, { stdio: 'ignore' });
  await waitForPort(port, child, 30_000);
  // The roles the pg_hba lines name.
  const [psqlCmd, psqlArgs] = asUser('postgres', path.join(bin, 'psql'), ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', 'CREATE ROLE certuser LOGIN; CREATE ROLE tlsonly LOGIN;']);
  execFileSync(psqlCmd, psqlArgs, { stdio: 'ignore' });
  return {
    port,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function mariadbAvailable(): boolean {
  return fs.existsSync('/usr/sbin/mariadbd') && fs.existsSync('/usr/bin/mariadb-install-db');
}

/** MariaDB with TLS on, grant tables skipped (any user may connect): enough to judge the TLS handshake. */
export async function startTlsMariadb(pki: Pki): Promise<TlsServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-my-'));
  const data = path.join(dir, 'data');
  for (const [from, to] of [
    [pki.serverCert, 'server.crt'],
    [pki.serverKey, 'server.key'],
    [pki.ca, 'ca.crt'],
  ] as const)
    fs.copyFileSync(from, path.join(dir, to));
  if (isRoot) execFileSync('chown', ['-R', 'mysql', dir]);
  execFileSync('/usr/bin/mariadb-install-db', ['--no-defaults', `--datadir=${data}`, ...(isRoot ? ['--user=mysql'] : []), '--skip-test-db', '--auth-root-authentication-method=normal'], { stdio: 'ignore' });
  const port = await freePort();
  const child = spawn(
    '/usr/sbin/mariadbd',
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${path.join(dir, 'mysqld.sock')}`,
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      '--skip-grant-tables',
      '--skip-name-resolve',
      `--ssl-ca=${path.join(dir, 'ca.crt')}`,
      `--ssl-cert=${path.join(dir, 'server.crt')}`,
      `--ssl-key=${path.join(dir, 'server.key')}`,
      '--innodb-buffer-pool-size=16M',
      ...(isRoot ? ['--user=mysql'] : []),
    ],
    { stdio: 'ignore' },
  );
  await waitForPort(port, child, 60_000);
  return {
    port,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
