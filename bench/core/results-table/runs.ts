/**
 * The table's rows grouped by run (one benchmark, timestamp, host and adapter), and the run
 * the docs' tables show per environment: the latest complete one.
 */
import type { BenchmarkKind, ResultMetric, ResultRow } from './schema.js';

/** The rows of one run: one benchmark, timestamp, host and adapter. */
export interface RunGroup {
  rows: ResultRow[];
  first: ResultRow;
  complete: boolean;
}

/** The rows of `benchmark` grouped by run, in the order of their first row. */
export function groupRuns(rows: readonly ResultRow[], benchmark: BenchmarkKind): RunGroup[] {
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    if (r.benchmark !== benchmark) continue;
    const k = [r.timestamp, r.host, r.browser, r.adapter_description].join('\u0000');
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  return [...groups.values()].map((g) => ({
    rows: g,
    first: g[0]!,
    complete: g.every((r) => r.complete),
  }));
}

/** Code-point order of two strings. */
export function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The runs' environments in a stable order: adapter, host, browser. */
export function compareEnv(a: ResultRow, b: ResultRow): number {
  return (
    byText(a.adapter_description, b.adapter_description) ||
    byText(a.host, b.host) ||
    byText(a.browser, b.browser)
  );
}

/** The latest complete run per key (ties: the later row in the file). */
export function latestComplete(
  groups: readonly RunGroup[],
  key: (r: ResultRow) => string,
): RunGroup[] {
  const best = new Map<string, RunGroup>();
  for (const g of groups) {
    if (!g.complete) continue;
    const k = key(g.first);
    const cur = best.get(k);
    if (!cur || Date.parse(g.first.timestamp) >= Date.parse(cur.first.timestamp)) best.set(k, g);
  }
  return [...best.values()];
}

/** A run's row of `metric` and `variant` (at `xValue` when given). */
export function find(
  g: RunGroup,
  metric: ResultMetric,
  variant: string,
  xValue?: string,
): ResultRow | undefined {
  return g.rows.find(
    (r) =>
      r.metric === metric &&
      r.variant === variant &&
      (xValue === undefined || r.x_value === xValue),
  );
}

/**
 * The divergence of a kernel row: `divergence=NAME` in its config, forward-kl without (every
 * row from before divergences).
 */
export function kernelRowDivergence(r: Pick<ResultRow, 'config'>): string {
  return /(?:^| )divergence=(\S+)/.exec(r.config)?.[1] ?? 'forward-kl';
}

/** A sweep's rows carry `sweep=NAME` in their config; the kernel section leaves them out. */
export function isSweep(g: RunGroup, name?: string): boolean {
  const m = /(?:^| )sweep=(\S+)/.exec(g.first.config);
  return m !== null && (name === undefined || m[1] === name);
}

/** Sorts `RxC` shapes by rows, then classes. */
export function byShape(a: string, b: string): number {
  const [ra, ca] = a.split('x').map(Number) as [number, number];
  const [rb, cb] = b.split('x').map(Number) as [number, number];
  return ra - rb || ca - cb || byText(a, b);
}

/** The latest complete vocabulary sweep per adapter, host and browser, in a stable order. */
export function latestVocabSweeps(rows: readonly ResultRow[]): RunGroup[] {
  return latestComplete(
    groupRuns(rows, 'kernel').filter(
      (g) => isSweep(g, 'vocab') && kernelRowDivergence(g.first) === 'forward-kl',
    ),
    (r) => [r.adapter_description, r.host, r.browser].join('\u0000'),
  ).sort((a, b) => compareEnv(a.first, b.first));
}
