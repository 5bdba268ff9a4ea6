/** The MNIST distillation benchmark's generated table: per adapter, host and preset. */
import {
  countCell,
  dateCell,
  fixedCell,
  hostCell,
  markdownTable,
  msCell,
  NO_ROWS,
  pctCell,
  ratioCell,
} from './markdown.js';
import { byText, compareEnv, find, groupRuns, latestComplete } from './runs.js';
import type { ResultRow } from './schema.js';

const PRESET_ORDER: readonly string[] = ['smoke', 'quick', 'full'];

/** The distillation section: per adapter, host and preset, the latest complete run. */
export function distillResultsSection(rows: readonly ResultRow[]): string {
  const runs = latestComplete(groupRuns(rows, 'distill'), (r) =>
    [r.adapter_description, r.host, r.browser, r.preset, r.dataset].join('\u0000'),
  ).sort((a, b) => {
    const pa = PRESET_ORDER.indexOf(a.first.preset);
    const pb = PRESET_ORDER.indexOf(b.first.preset);
    return (
      compareEnv(a.first, b.first) ||
      (pa < 0 ? 99 : pa) - (pb < 0 ? 99 : pb) ||
      byText(a.first.preset, b.first.preset) ||
      byText(a.first.dataset, b.first.dataset)
    );
  });
  if (runs.length === 0) return NO_ROWS;
  const blocks = runs.map((g) => {
    const f = g.first;
    const wall = find(g, 'total_wall_s', 'all');
    const head =
      `**${f.adapter_description}**, ${hostCell(f)}, preset \`${f.preset}\` ` +
      `(${f.dataset}; ${f.config}), commit \`${f.commit}\`, ${dateCell(f)}` +
      (wall ? `, ${Math.round(wall.p50)} s wall clock:` : ':');
    const models: [string, string][] = [
      ['teacher', 'teacher'],
      ['fused', 'student distilled, fused loss'],
      ['stock', 'student distilled, stock loss'],
      ['scratch', 'student from scratch'],
    ];
    const table = markdownTable(
      ['model', 'params', 'test accuracy', 'test loss', 'step time [p20–p80]', 'dispatches/step'],
      models.map(([v, label]) => [
        label,
        countCell(find(g, 'params', v)),
        pctCell(find(g, 'test_accuracy', v)),
        fixedCell(find(g, 'test_loss', v), 3),
        msCell(find(g, 'step_ms', v)),
        countCell(find(g, 'dispatches_per_step', v)),
      ]),
    );
    const notes: string[] = [];
    const speedup = find(g, 'step_speedup', 'stock/fused');
    if (speedup) notes.push(`- Whole step, stock/fused: ${ratioCell(speedup)}.`);
    const lossFused = find(g, 'loss_alone_ms', 'fused');
    const lossStock = find(g, 'loss_alone_ms', 'stock');
    if (lossFused && lossStock) {
      const d = (v: string) => {
        const c = countCell(find(g, 'loss_alone_dispatches', v));
        return `${c} ${c === '1' ? 'dispatch' : 'dispatches'}`;
      };
      notes.push(
        `- The loss alone (forward+backward in the training loop, ` +
          `${lossFused.x_value.replace('x', '×')}): fused ${msCell(lossFused)}, ${d('fused')}; ` +
          `stock ${msCell(lossStock)}, ${d('stock')}: ` +
          `${ratioCell(find(g, 'loss_alone_speedup', 'stock/fused'))}.`,
      );
    }
    const abs = find(g, 'curve_max_abs_diff', 'fused-stock');
    const rel = find(g, 'curve_max_rel_diff', 'fused-stock');
    if (abs && rel) {
      notes.push(
        `- Fused and stock losses, same start and batches: max difference ` +
          `${abs.p50.toExponential(1)} (relative ${rel.p50.toExponential(1)}) over the first ` +
          `${abs.x_value} steps.`,
      );
    }
    return [head, '', table, ...(notes.length ? ['', ...notes] : [])].join('\n');
  });
  return blocks.join('\n\n');
}
