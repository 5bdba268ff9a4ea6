/**
 * What turns a report into table rows, whatever its kind: the provenance every row repeats
 * (host, adapter, versions, commit, timestamp) and a sink that rounds the figures and leaves
 * out the ones that are null or not finite.
 */
import type { Spread } from '../lib/stats.js';
import type { BenchmarkKind, ResultClock, ResultHost, ResultMetric, ResultRow } from './schema.js';

/** The adapter fields the table reads (DistillReport's and KernelReport's adapter have them). */
export interface AdapterFields {
  readonly description: string;
  readonly vendor: string;
  readonly architecture: string;
}

/** The provenance fields every report has. */
export interface ReportProvenance {
  adapter: AdapterFields;
  software: boolean;
  commit: string;
  timestamp: string;
  versions: Record<string, string>;
  /** Set by the page ('browser'); absent in Node's reports. */
  host?: ResultHost;
}

/** Rounds to 6 significant digits, so that a row survives the CSV unchanged. */
function round6(x: number): number {
  return Number(x.toPrecision(6));
}

/** 'node' or 'browser': the report's own field, else a browser's entries in `versions`. */
function reportHost(r: ReportProvenance): ResultHost {
  if (r.host) return r.host;
  return r.versions.browser !== undefined || r.versions.userAgent !== undefined
    ? 'browser'
    : 'node';
}

export type RowBase = Omit<
  ResultRow,
  | 'metric'
  | 'unit'
  | 'variant'
  | 'x_name'
  | 'x_value'
  | 'p50'
  | 'p20'
  | 'p80'
  | 'n'
  | 'clock'
  | 'note'
>;

export function baseRow(
  r: ReportProvenance,
  benchmark: BenchmarkKind,
  fields: { preset: string; dataset: string; config: string; complete: boolean },
): RowBase {
  const host = reportHost(r);
  const v = r.versions;
  return {
    benchmark,
    ...fields,
    host,
    browser: host === 'browser' ? (v.browser ?? '') : '',
    node_version: host === 'node' ? (v.node ?? '') : '',
    adapter_vendor: r.adapter.vendor,
    adapter_architecture: r.adapter.architecture,
    adapter_description: r.adapter.description,
    software: r.software,
    tfjs_version: v['tfjs-core'] ?? '',
    webgpu_version: host === 'node' ? (v.webgpu ?? '') : '',
    package_version: v['tfjs-fused-distill'] ?? '',
    commit: r.commit,
    timestamp: r.timestamp,
  };
}

export interface Figure {
  metric: ResultMetric;
  unit: string;
  variant: string;
  x_name: string;
  x_value: string;
  clock: ResultClock;
  complete?: boolean;
  note?: string;
}

function isNum(x: number | null | undefined): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** Collects rows, skipping figures that are null or not finite. */
export class RowSink {
  readonly rows: ResultRow[] = [];
  constructor(private readonly base: RowBase) {}

  value(f: Figure, x: number | null | undefined): void {
    if (!isNum(x)) return;
    this.push(f, { p50: round6(x), p20: null, p80: null, n: null });
  }

  spread(f: Figure, s: Spread | null | undefined): void {
    if (!s || !isNum(s.p50) || !isNum(s.p20) || !isNum(s.p80)) return;
    this.push(f, { p50: round6(s.p50), p20: round6(s.p20), p80: round6(s.p80), n: s.n });
  }

  /** stock/fused: p50 ratio, band stock p20 / fused p80 … stock p80 / fused p20. */
  ratio(f: Figure, fused: Spread, stock: Spread): void {
    const p50 = stock.p50 / fused.p50;
    const p20 = stock.p20 / fused.p80;
    const p80 = stock.p80 / fused.p20;
    if (!isNum(p50) || !isNum(p20) || !isNum(p80)) return;
    this.push(f, { p50: round6(p50), p20: round6(p20), p80: round6(p80), n: null });
  }

  private push(f: Figure, nums: Pick<ResultRow, 'p50' | 'p20' | 'p80' | 'n'>): void {
    const { complete, note, ...rest } = f;
    this.rows.push({
      ...this.base,
      ...rest,
      ...nums,
      complete: this.base.complete && complete !== false,
      note: note ?? '',
    });
  }
}
