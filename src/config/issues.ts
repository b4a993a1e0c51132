import type { z } from 'zod';

type Issue = z.core.$ZodIssue;

/** `kinds.leave.fields.start_time` from a zod path. */
export function formatPath(p: ReadonlyArray<PropertyKey>): string {
  if (p.length === 0) return '(root)';
  return p.map((seg, i) => (typeof seg === 'number' ? `[${seg}]` : `${i === 0 ? '' : '.'}${String(seg)}`)).join('');
}

function messageFor(issue: Issue): string {
  switch (issue.code) {
    case 'invalid_type':
      // zod 4 words a missing key as "expected X, received undefined".
      if (/received undefined/.test(issue.message)) return 'required';
      return `expected ${issue.expected}${/received (\w+)/.exec(issue.message)?.[0] ? `, ${/received (\w+)/.exec(issue.message)![0]}` : ''}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_union':
      if (issue.errors.every((branch) => branch.some((i) => i.path.length === 0 && /received undefined/.test(i.message)))) return 'required';
      return 'expected a column name or an object { column | value, map, default }';
    default:
      return issue.message;
  }
}

/**
 * One readable line per problem, each naming its full path, e.g.
 * `kinds.leave.fields.start_time: required` or `kinds.leave.fieldz: unknown key`.
 */
export function formatIssues(issues: readonly Issue[], base: ReadonlyArray<PropertyKey> = []): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const at = [...base, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${formatPath([...at, key])}: unknown key`);
      continue;
    }
    if (issue.code === 'invalid_union') {
      // A field spec is "column name | object": when the object branch got deeper, report
      // its problems (they name the inner key); otherwise say what shapes are accepted.
      const deeper = issue.errors.filter((branch) => branch.some((i) => i.path.length > 0 || i.code === 'unrecognized_keys' || i.code === 'custom'));
      const best = deeper[0];
      if (best) {
        lines.push(...formatIssues(best, at));
        continue;
      }
    }
    lines.push(`${formatPath(at)}: ${messageFor(issue)}`);
  }
  return [...new Set(lines)];
}
