import type http from 'node:http';
import type { EmulatorOptions } from './options.js';
import { fail, ok, type Answer, type EmulatorStats } from './answers.js';

/* The emulated contact endpoint: contact/v3/users/batch_get_id over the options' user directory. */

export const CONTACT_PATH = '/open-apis/contact/v3/users/batch_get_id';

/** What the endpoint reads from the server (live). */
export interface ContactHost {
  readonly opts: EmulatorOptions;
  readonly stats: EmulatorStats;
  now(): number;
  authorize(header: string | undefined): Answer | null;
  throttled(): Answer;
}

/** `users` when set; else, with a directory, its user ids and open ids; else anyone. */
export function knownUser(opts: EmulatorOptions, userId: string): boolean {
  if (opts.users) return opts.users.includes(userId);
  if (opts.directory.length === 0) return true;
  return opts.directory.some((u) => u.user_id === userId || (u.open_id ?? `ou_${u.user_id}`) === userId);
}

export class ContactEndpoint {
  private calls: number[] = [];

  constructor(private readonly host: ContactHost) {}

  /**
   * E-mails and mobiles → user ids from the directory. Its own rate limit (50/s and 1,000/min)
   * and, like every contact API, outside the monthly quota. Unknown addresses come back
   * without `user_id`; resigned users only with include_resigned.
   */
  answer(url: URL, headers: http.IncomingHttpHeaders, body: unknown): Answer {
    const auth = this.host.authorize(headers.authorization);
    if (auth) return auth;
    const now = this.host.now();
    this.calls = this.calls.filter((t) => t > now - 60_000);
    const lastSecond = this.calls.filter((t) => t > now - 1_000).length;
    if (lastSecond >= this.host.opts.contactRateLimit.perSecond || this.calls.length >= this.host.opts.contactRateLimit.perMinute) {
      this.host.stats.contact.rateLimited++;
      return this.host.throttled();
    }
    this.calls.push(now);
    if (body === undefined) return fail(400, 99992402, 'field validation failed: body is not valid JSON');
    const b = body as { emails?: unknown; mobiles?: unknown; include_resigned?: unknown };
    const emails = b.emails ?? [];
    const mobiles = b.mobiles ?? [];
    if (!Array.isArray(emails) || !emails.every((e) => typeof e === 'string')) return fail(400, 99992402, 'field validation failed: emails');
    if (!Array.isArray(mobiles) || !mobiles.every((e) => typeof e === 'string')) return fail(400, 99992402, 'field validation failed: mobiles');
    if (emails.length > 50) return fail(400, 99992402, 'field validation failed: emails: the max len is 50');
    if (mobiles.length > 50) return fail(400, 99992402, 'field validation failed: mobiles: the max len is 50');
    const idType = url.searchParams.get('user_id_type') ?? 'open_id';
    if (!['open_id', 'user_id', 'union_id'].includes(idType)) return fail(400, 99992402, 'field validation failed: user_id_type');
    const c = this.host.stats.contact;
    c.calls++;
    c.emails += emails.length;
    c.mobiles += mobiles.length;
    c.maxEmails = Math.max(c.maxEmails, emails.length);
    c.maxMobiles = Math.max(c.maxMobiles, mobiles.length);
    const includeResigned = b.include_resigned === true;
    const idOf = (u: EmulatorOptions['directory'][number]) => (idType === 'user_id' ? u.user_id : idType === 'union_id' ? `on_${u.user_id}` : (u.open_id ?? `ou_${u.user_id}`));
    const answer = (field: 'email' | 'mobile', value: string) => {
      const u = this.host.opts.directory.find((d) => (field === 'email' ? d.email?.toLowerCase() === value.toLowerCase() : d.mobile === value));
      if (!u || (u.resigned && !includeResigned)) return { [field]: value };
      return {
        [field]: value,
        user_id: idOf(u),
        status: { is_frozen: false, is_resigned: u.resigned === true, is_activated: u.resigned !== true, is_exited: false, is_unjoin: false },
      };
    };
    return ok({ user_list: [...emails.map((e) => answer('email', e)), ...mobiles.map((m) => answer('mobile', m))] });
  }
}
