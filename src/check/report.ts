/**
 * The check-config report: a list of checks, each ok, warning or error, printed as one
 * block an operator can read top to bottom. Errors make the command exit 2.
 */
export type CheckLevel = 'ok' | 'warn' | 'error';

export interface CheckItem {
  readonly level: CheckLevel;
  /** What was checked, e.g. `source database` or `kinds.leave.fields.start_time`. */
  readonly subject: string;
  readonly message: string;
}

export class CheckReport {
  readonly items: CheckItem[] = [];

  ok(subject: string, message: string): void {
    this.items.push({ level: 'ok', subject, message });
  }

  warn(subject: string, message: string): void {
    this.items.push({ level: 'warn', subject, message });
  }

  error(subject: string, message: string): void {
    this.items.push({ level: 'error', subject, message });
  }

  get errors(): number {
    return this.items.filter((i) => i.level === 'error').length;
  }

  get warnings(): number {
    return this.items.filter((i) => i.level === 'warn').length;
  }

  render(): string {
    const mark: Record<CheckLevel, string> = { ok: '  ok   ', warn: '  WARN ', error: '  ERROR' };
    const lines = this.items.map((i) => `${mark[i.level]} ${i.subject}: ${i.message}`);
    const verdict =
      this.errors > 0
        ? `configuration has ${this.errors} error(s) and ${this.warnings} warning(s)`
        : `configuration OK${this.warnings > 0 ? ` (${this.warnings} warning(s))` : ''}`;
    return [...lines, '', verdict, ''].join('\n');
  }
}
