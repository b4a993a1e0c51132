import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError } from '../errors.js';
import type { TlsMode, TlsUrlSyntax } from './dialect.js';

/**
 * TLS for the database connections, from the URL's query parameters, with libpq's meaning
 * on PostgreSQL and the mysql client's on MySQL / MariaDB:
 *
 *   mode         PostgreSQL sslmode   MySQL ssl-mode    what happens
 *   disable      disable              DISABLED          plain TCP
 *   allow        allow                —                 plain; TLS only if the server refuses plain
 *   prefer       prefer               PREFERRED         TLS if the server offers it, else plain; not verified
 *   require      require              REQUIRED          TLS, certificate not verified
 *   verify-ca    verify-ca            VERIFY_CA         TLS, chain verified against the root, any host name
 *   verify-full  verify-full          VERIFY_IDENTITY   TLS, chain and host name verified
 *
 * Root certificate: sslrootcert / ssl-ca (a PEM file; sslrootcert=system, or none, uses the
 * system's roots). Client certificate: sslcert + sslkey / ssl-cert + ssl-key (sslpassword
 * for an encrypted key). As libpq and the mysql client do, a root certificate given with
 * `require` (PostgreSQL) or without a mode (MySQL) turns on chain verification. No TLS
 * parameter at all: plain TCP.
 */
export type { TlsMode } from './dialect.js';

export interface TlsSpec {
  readonly mode: TlsMode;
  /** PEM file of the root certificate(s); undefined: the system's roots. */
  readonly rootCert?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly passphrase?: string;
}

/** Take the TLS parameters out of a URL's query; every problem names the field and the parameter. */
export function parseTls(syntax: TlsUrlSyntax, params: Readonly<Record<string, string>>, field: string): TlsSpec {
  const names = syntax.params;
  const known = new Set<string>(Object.values(names));
  const problems: string[] = [];
  for (const k of Object.keys(params)) {
    // A TLS parameter of the other driver (or a typo) must not be ignored silently.
    if (/^ssl/i.test(k) && !known.has(k)) problems.push(`${field}: unknown TLS parameter "${k}" (use ${Object.values(names).join(', ')})`);
  }
  const file = (param: string, allowSystem = false): string | undefined => {
    const v = params[param];
    if (v === undefined || v === '') return undefined;
    if (allowSystem && v === 'system') return undefined;
    const abs = path.resolve(v);
    try {
      fs.accessSync(abs, fs.constants.R_OK);
    } catch {
      problems.push(`${field}: ${param} file ${abs} cannot be read`);
    }
    return abs;
  };
  const rootCert = file(names.root, syntax.systemRoot);
  const cert = file(names.cert);
  const key = file(names.key);
  if ((cert === undefined) !== (key === undefined)) problems.push(`${field}: ${names.cert} and ${names.key} go together (a client certificate and its key)`);
  const rawMode = params[names.mode];
  let mode: TlsMode | undefined;
  if (rawMode !== undefined) {
    mode = Object.hasOwn(syntax.modes, syntax.modeCaseInsensitive ? rawMode.toUpperCase() : rawMode)
      ? syntax.modes[syntax.modeCaseInsensitive ? rawMode.toUpperCase() : rawMode]
      : undefined;
    if (!mode) {
      const allowed = Object.keys(syntax.modes).join(', ');
      problems.push(`${field}: ${names.mode} "${rawMode}" is not one of ${allowed}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const anyTlsParam = Object.values(names).some((n) => params[n] !== undefined);
  if (mode === undefined) {
    if (!anyTlsParam) mode = 'disable';
    else if (syntax.rootWithoutModeVerifies && rootCert !== undefined) mode = 'verify-ca';
    else mode = 'prefer';
  }
  if (mode === 'require' && syntax.rootWithRequireVerifies && rootCert !== undefined) mode = 'verify-ca';
  const passphrase = params[names.pass];
  return { mode, ...(rootCert ? { rootCert } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(passphrase ? { passphrase } : {}) };
}

/** Node TLS options for a connection that uses TLS in this mode (files read now). */
export function tlsOptions(spec: TlsSpec): ConnectionOptions {
  const verify = spec.mode === 'verify-ca' || spec.mode === 'verify-full';
  return {
    rejectUnauthorized: verify,
    ...(verify && spec.rootCert ? { ca: fs.readFileSync(spec.rootCert, 'utf8') } : {}),
    ...(spec.cert ? { cert: fs.readFileSync(spec.cert, 'utf8') } : {}),
    ...(spec.key ? { key: fs.readFileSync(spec.key, 'utf8') } : {}),
    ...(spec.passphrase ? { passphrase: spec.passphrase } : {}),
    // verify-ca: the chain is checked, the name in the certificate is not.
    ...(spec.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

/** mysql2's `ssl` option: its own flag for the host name check. */
export function mysqlSslOptions(spec: TlsSpec): Record<string, unknown> {
  const { checkServerIdentity: _ignored, ...opts } = tlsOptions(spec);
  return { ...opts, verifyIdentity: spec.mode === 'verify-full' };
}

function readFirstBytes(host: string, port: number, send: Buffer | null, enough: (b: Buffer) => boolean, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(buf);
    };
    socket.once('connect', () => {
      if (send) socket.write(send);
    });
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (enough(buf)) finish(null);
    });
    socket.once('error', (err) => finish(err));
    socket.once('close', () => finish(buf.length > 0 ? null : new Error(`${host}:${port} closed the connection`)));
  });
}

/** PostgreSQL: send an SSLRequest; the server answers 'S' (TLS offered) or 'N'. */
export async function pgOffersTls(host: string, port: number, timeoutMs = 10_000): Promise<boolean> {
  const request = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
  const answer = await readFirstBytes(host, port, request, (b) => b.length >= 1, timeoutMs);
  return answer.subarray(0, 1).toString('latin1') === 'S';
}

const CLIENT_SSL = 0x800;

/** MySQL / MariaDB: read the server's greeting and look at its SSL capability flag. */
export async function mysqlOffersTls(host: string, port: number, timeoutMs = 10_000): Promise<boolean> {
  const packet = await readFirstBytes(host, port, null, (b) => b.length >= 4 && b.length >= 4 + b.readUIntLE(0, 3), timeoutMs);
  const body = packet.subarray(4);
  // An error packet (0xff): the server refuses this host before any handshake.
  if (body[0] !== 10) return false;
  const versionEnd = body.indexOf(0, 1);
  // version, NUL, connection id (4), auth data part 1 (8), filler (1), capability flags (2)
  const flagsAt = versionEnd + 1 + 4 + 8 + 1;
  if (versionEnd < 0 || body.length < flagsAt + 2) return false;
  return (body.readUInt16LE(flagsAt) & CLIENT_SSL) !== 0;
}
