import fs from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { ConfigError } from '../../errors.js';
import { parseFaults, startEmulator, type EmulatorOptions } from '../../emulator/index.js';
import { EMULATOR_OPTIONS_ENV, parseOptionsJson, type DirectoryUser } from '../../emulator/options.js';

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number ≥ 0`);
    return n;
  };
}

function signedInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number (ms)`);
    return n;
  };
}

function readUsers(file: string, flag = '--users'): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError([`${flag}: cannot read ${file}`]);
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    const list = JSON.parse(trimmed) as unknown;
    if (!Array.isArray(list) || !list.every((u) => typeof u === 'string')) throw new ConfigError([`${flag}: ${file} must be a JSON array of strings`]);
    return list;
  }
  return trimmed.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
}

/**
 * The `--users` file: user ids (a JSON array of strings, or one per line), or the directory,
 * a JSON array of `{user_id, email?, mobile?, open_id?, resigned?}` objects (contact's
 * batch_get_id answers from it; creates for other user ids get 1220004).
 */
function readUserFile(file: string): { users: string[] | null; directory: DirectoryUser[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError([`--users: cannot read ${file}`]);
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let list: unknown;
    try {
      list = JSON.parse(trimmed);
    } catch (err) {
      throw new ConfigError([`--users: ${file} is not valid JSON: ${(err as Error).message}`]);
    }
    if (Array.isArray(list) && list.length > 0 && list.every((u) => typeof u === 'object' && u !== null)) {
      const directory: DirectoryUser[] = [];
      for (const [i, u] of (list as Array<Record<string, unknown>>).entries()) {
        if (typeof u.user_id !== 'string' || u.user_id === '') throw new ConfigError([`--users: ${file}: entry ${i} has no user_id`]);
        for (const f of ['email', 'mobile', 'open_id'] as const) {
          if (u[f] !== undefined && typeof u[f] !== 'string') throw new ConfigError([`--users: ${file}: entry ${i} (${u.user_id}): ${f} must be a string`]);
        }
        if (u.resigned !== undefined && typeof u.resigned !== 'boolean') throw new ConfigError([`--users: ${file}: entry ${i} (${u.user_id}): resigned must be true or false`]);
        directory.push(u as unknown as DirectoryUser);
      }
      return { users: null, directory };
    }
  }
  return { users: readUsers(file), directory: [] };
}

export function register(program: Command): void {
  program
    .command('emulator')
    .description('run a local Feishu attendance emulator (token, create, query, revoke, rate limit, faults)')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <n>', 'listen port', int('--port'), 8787)
    .option('--app-id <id>', 'app id it accepts', 'cli_emulator')
    .option('--app-secret <s>', 'app secret it accepts', 'emulator-secret')
    .option('--rate-limit <n>', 'attendance calls per second per endpoint', int('--rate-limit'), 50)
    .option('--token-ttl <seconds>', 'lifetime of a tenant_access_token', int('--token-ttl'), 7200)
    .option('--faults <spec>', 'fault probabilities, e.g. 5xx=0.02,drop=0.02,slow=0.01,429=0.02,stored-then-failed=0.02')
    .option('--seed <n>', 'seed of the fault sequence', int('--seed'), 1)
    .option('--users <file>', 'known user ids (JSON array or one per line), or the user directory: a JSON array of {user_id, email, mobile, open_id, resigned} for contact batch_get_id; other user ids get 1220004')
    .option('--strict', 'enforce uniq_id shorter than 14 characters')
    .option('--duplicate <mode>', 'answer to a repeated idempotent_id: conflict (default) | conflict-with-data | replay')
    .option('--revoked-status <n>', 'query status revoked leaves and overtime appear under: 4 | 3')
    .option('--query-window <reading>', 'the 30-day query range: exclusive (to − from ≤ 30) | inclusive (≤ 29)')
    .option('--query-cap-on <field>', 'the today + 1 cap applies to check_date_ "to" | "from"')
    .option('--max-query-users <n>', 'most user_ids in one query', int('--max-query-users'))
    .option('--no-api-access', 'the tenant never finished "API 接入": every attendance call gets 1220004')
    .option('--departed-users <file>', 'departed user ids (JSON array or one per line): query returns their times in UTC+0 with an empty time_zone')
    .option('--i18n-names-required', 'require all three i18n_names (ch, en, ja)')
    .option('--overlapping-leaves <mode>', 'a leave overlapping an approved one: accept | refuse')
    .option('--revoke-twice <mode>', 'revoking an approval that is not approved: error | ok')
    .option('--echo-leave-detail-ranges', 'echo leave_detail_range_objs on leaves in responses')
    .option('--query-interval <mode>', 'leave interval in query results: provided | omitted')
    .option('--options <json>', `more options as JSON (like ${EMULATOR_OPTIONS_ENV}, which is also read)`)
    .option('--latency <ms>', 'delay before every attendance answer', int('--latency'), 0)
    .option('--clock-offset <ms>', "shift the emulator's clock (creation times, today + 1 cap); negative: the past", signedInt('--clock-offset'), 0)
    .option('--monthly-quota <n>', 'successful attendance calls allowed per calendar month; over it: HTTP 429, code 99991403', int('--monthly-quota'))
    .option('--sealed-until <yyyyMMdd>', 'dates before this are sealed (封账): their creates and revokes are refused')
    .action(async (o: Record<string, unknown>) => {
      let faults = {};
      try {
        faults = parseFaults(String(o.faults ?? ''));
      } catch (err) {
        throw new ConfigError([(err as Error).message]);
      }
      if (o.duplicate !== undefined && o.duplicate !== 'conflict' && o.duplicate !== 'conflict-with-data' && o.duplicate !== 'replay') throw new ConfigError(['--duplicate: conflict, conflict-with-data or replay']);
      // Only the switches given: the others keep the defaults, or what the environment sets.
      const switches: Record<string, unknown> = {};
      if (o.revokedStatus !== undefined) switches.revokedStatus = Number(o.revokedStatus);
      if (o.queryWindow !== undefined) switches.queryWindow = o.queryWindow;
      if (o.queryCapOn !== undefined) switches.queryCapOn = o.queryCapOn;
      if (o.maxQueryUsers !== undefined) switches.maxQueryUsers = o.maxQueryUsers;
      if (o.apiAccess === false) switches.apiAccess = false;
      if (typeof o.departedUsers === 'string') switches.departedUsers = readUsers(o.departedUsers, '--departed-users');
      if (o.i18nNamesRequired === true) switches.i18nNamesRequired = true;
      if (o.overlappingLeaves !== undefined) switches.overlappingLeaves = o.overlappingLeaves;
      if (o.revokeTwice !== undefined) switches.revokeTwice = o.revokeTwice;
      if (o.echoLeaveDetailRanges === true) switches.echoLeaveDetailRanges = true;
      if (o.queryInterval !== undefined) switches.queryInterval = o.queryInterval;
      let extra: Partial<EmulatorOptions> = {};
      try {
        extra = parseOptionsJson(JSON.stringify(switches), 'emulator option');
        if (typeof o.options === 'string') extra = { ...parseOptionsJson(o.options, '--options'), ...extra };
      } catch (err) {
        throw new ConfigError([(err as Error).message]);
      }
      if (o.sealedUntil !== undefined && !/^\d{8}$/.test(String(o.sealedUntil))) throw new ConfigError(['--sealed-until: a date as yyyyMMdd']);
      const emu = await startEmulator({
        host: String(o.host),
        port: o.port as number,
        appId: String(o.appId),
        appSecret: String(o.appSecret),
        rateLimit: o.rateLimit as number,
        tokenTtlSeconds: o.tokenTtl as number,
        faults,
        seed: o.seed as number,
        ...(typeof o.users === 'string' ? readUserFile(o.users) : { users: null }),
        ...(o.strict === true ? { strict: true } : {}),
        ...(o.duplicate !== undefined ? { duplicateIdempotentId: o.duplicate as EmulatorOptions['duplicateIdempotentId'] } : {}),
        latencyMs: o.latency as number,
        clockOffsetMs: o.clockOffset as number,
        sealedUntil: typeof o.sealedUntil === 'string' ? o.sealedUntil : null,
        monthlyQuota: typeof o.monthlyQuota === 'number' ? o.monthlyQuota : null,
        ...extra,
      });
      process.stdout.write(
        [
          `Feishu emulator listening on ${emu.url}`,
          `  app id:     ${emu.appId}`,
          `  app secret: ${emu.appSecret}`,
          '',
          'Point the worker at it:',
          `  export FEISHU_BASE_URL=${emu.url} FEISHU_APP_ID=${emu.appId} FEISHU_APP_SECRET=${emu.appSecret}`,
          '',
          `Inspect: ${emu.url}/_emulator/ledger  ${emu.url}/_emulator/stats   (Ctrl-C to stop)`,
          '',
        ].join('\n'),
      );
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await emu.close();
      process.stdout.write('emulator stopped\n');
    });
}
