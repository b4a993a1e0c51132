import { redact, registerSecret, clearSecretsForTests } from '../src/log/redact.js';
import { parseDatabaseUrl } from '../src/db/url.js';

describe('redaction', () => {
  afterEach(() => clearSecretsForTests());
  it('removes registered secrets and known secret patterns', () => {
    registerSecret('s3cr3t-app-secret');
    const out = redact('secret s3cr3t-app-secret, header Bearer t-g1044ghJK7ABCDEFGHIJKLMN, url postgres://u:pw123@h/db');
    expect(out).not.toContain('s3cr3t-app-secret');
    expect(out).not.toContain('t-g1044ghJK7ABCDEFGHIJKLMN');
    expect(out).not.toContain('pw123');
  });
});

describe('parseDatabaseUrl', () => {
  it('masks the password in display', () => {
    const t = parseDatabaseUrl('postgres://hr:p%40ss@db.local:6543/hr');
    expect(t).toMatchObject({ dialect: 'pg', host: 'db.local', port: 6543, user: 'hr', password: 'p@ss', database: 'hr' });
    expect(t.display).not.toContain('p%40ss');
    expect(t.display).toContain('***');
  });
  it('accepts sqlite paths', () => {
    expect(parseDatabaseUrl('sqlite:./data/hr.sqlite').dialect).toBe('sqlite');
    expect(() => parseDatabaseUrl('sqlite:')).toThrow(/file path/);
    expect(() => parseDatabaseUrl('oracle://x/y')).toThrow(/unsupported scheme/);
  });
});
