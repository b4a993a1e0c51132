import { z } from 'zod';
import { configSchema, durationSpecSchema, fieldSpecSchema, typeMappingSchema, userIdSpecSchema } from './schema.js';

/*
 * Renders the configuration reference (docs/configuration.md) from the zod schema itself,
 * so the documentation cannot drift from what the loader accepts (a test compares them).
 */

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  pattern?: string;
  minimum?: number;
  maximum?: number;
};

function toJson(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

function typeOf(s: JsonSchema): string {
  if (s.anyOf) {
    const isField = s.anyOf.some((a) => a.type === 'string') && s.anyOf.some((a) => a.properties?.column && a.properties?.map);
    return isField ? 'field' : s.anyOf.map(typeOf).join(' | ');
  }
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.properties?.column && s.properties?.hours_per_day) return 'duration';
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object' && !s.properties) return 'map';
  if (Array.isArray(s.type)) return s.type.join(' | ');
  if (s.type === 'integer') {
    const max = s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER ? s.maximum : undefined;
    const range = s.minimum !== undefined || max !== undefined ? ` (${s.minimum ?? ''}…${max ?? ''})` : '';
    return `integer${range}`;
  }
  return s.type ?? 'any';
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function defaultOf(s: JsonSchema, required: boolean): string {
  if (s.default !== undefined) {
    return typeof s.default === 'object' ? '(see keys)' : `\`${JSON.stringify(s.default)}\``;
  }
  return required ? '**required**' : '—';
}

function walk(s: JsonSchema, at: string, required: boolean, rows: string[]): void {
  const type = typeOf(s);
  rows.push(`| \`${at}\` | ${cell(type)} | ${defaultOf(s, required)} | ${cell(s.description ?? '')} |`);
  if (type === 'field' || type === 'duration') return;
  if (s.properties) {
    for (const [k, v] of Object.entries(s.properties)) walk(v, `${at}.${k}`, s.required?.includes(k) ?? false, rows);
  } else if (type === 'map' && typeof s.additionalProperties === 'object' && s.additionalProperties.properties) {
    const inner = s.additionalProperties;
    for (const [k, v] of Object.entries(inner.properties ?? {})) walk(v, `${at}.<code>.${k}`, inner.required?.includes(k) ?? false, rows);
  }
}

function table(schema: JsonSchema, root: string): string[] {
  const rows = ['| key | type | default | meaning |', '|---|---|---|---|'];
  for (const [k, v] of Object.entries(schema.properties ?? {})) {
    walk(v, root ? `${root}.${k}` : k, schema.required?.includes(k) ?? false, rows);
  }
  return rows;
}

export function renderConfigReference(): string {
  const main = toJson(configSchema);
  const out: string[] = [
    '# Configuration reference',
    '',
    'Generated from the configuration schema (`src/config/schema.ts`) by `attendance-sync config-reference`;',
    'a test fails when this page and the schema disagree. Unknown keys are errors.',
    '',
    'Types: **field** is where a value comes from (see [Field](#field)); **duration** is a',
    'length of time read from a column (see [Duration](#duration)).',
    '',
    '## Keys',
    '',
    ...table(main, ''),
    '',
    '## Field',
    '',
    'Either a column name (`start_time: start_at`), or an object:',
    '',
    ...table(toJson((fieldSpecSchema as unknown as { options: z.ZodType[] }).options[1] as z.ZodType), ''),
    '',
    '`fields.user_id` takes one more key, `resolve`:',
    '',
    ...table(toJson((userIdSpecSchema as unknown as { options: z.ZodType[] }).options[1] as z.ZodType), '').filter((line, i) => i < 2 || line.startsWith('| `resolve`')),
    '',
    '## Duration',
    '',
    ...table(toJson(durationSpecSchema), ''),
    '',
    '## Type mapping (`kinds.leave.types.<code>`, `kinds.out.types.<code>`)',
    '',
    ...table(toJson(typeMappingSchema), ''),
    '',
  ];
  return out.join('\n');
}
