/**
 * The kernel benchmark panel: the sizes of `npm run bench:kernel`, fused vs stock vs the memory
 * ceiling, forward+backward, on this GPU, in seconds (most visitors run this first). Same code
 * as the CLI (bench/core/kernel-bench/); results fill the table and chart as shapes finish.
 * The top-K sweep (fused sparse vs fused dense vs stock sparse) and the linear head (the fused
 * linear op vs matMul + fused loss vs matMul + stock, at small `rows × H × V` sizes) are shown as
 * the CLI prints them.
 */
import ceilingShader from '../../core/memory-ceiling.wgsl?raw';
import {
  DEFAULT_KERNEL_SHAPES,
  formatLinearLine,
  formatLinearTable,
  formatTopKLine,
  parseLinearSizes,
  formatTopKTable,
  parseShapes,
  runKernelBenchmark,
  sweepShapes,
  topKSweepShapes,
  type KernelShapeResult,
  type KernelSweep,
} from '../../core/kernel-bench/index.js';
import { emit } from '../automation.js';
import { BUILD, pageVersions } from '../build-info.js';
import { runButtons, type PageContext } from '../context.js';
import { renderKernelReport, renderKernelResults } from '../views/kernel-view.js';
import { el, errorText, setStatus } from '../ui.js';

/** The panel's default linear sizes: small, so that one run takes seconds on any adapter. */
const PAGE_LINEAR_SIZES = '64x32x1024,256x64x8192';

export interface KernelPanel {
  run(params?: URLSearchParams): Promise<boolean>;
}

export function createKernelPanel(root: HTMLElement, ctx: PageContext): KernelPanel {
  const shapes = el('input', {
    type: 'text',
    value: DEFAULT_KERNEL_SHAPES,
    'aria-label': 'shapes',
    spellcheck: 'false',
  });
  const sweep = el(
    'select',
    { 'aria-label': 'sweep' },
    el('option', { value: '' }, 'the shapes above'),
    el('option', { value: 'vocab' }, 'vocabulary sweep (C 1k–256k × rows 64/512/2048)'),
    el('option', { value: 'topk' }, 'top-K teacher sweep (256 rows × C 32k/128k × K 8/32/128)'),
    el('option', { value: 'linear' }, 'linear head at the sizes below (fused linear vs matMul)'),
  );
  /** The linear head's sizes, rows × H × V: small by default (one size takes seconds). */
  const linearSizes = el('input', {
    type: 'text',
    value: PAGE_LINEAR_SIZES,
    'aria-label': 'linear sizes',
    spellcheck: 'false',
  });
  const windows = el('input', {
    type: 'number',
    min: '3',
    max: '50',
    value: '7',
    'aria-label': 'windows',
  });
  const { start, stop } = runButtons(ctx, 'kernel', 'Run kernel benchmark', () => void run());
  const status = el('p', { class: 'status', role: 'status' });
  const out = el('div', { class: 'results' });
  root.append(
    el(
      'p',
      {},
      'The fused loss, forward and backward, against the same maths composed from stock tfjs ops ' +
        'and against a memory ceiling (two reads and one write of the logits): medians of timed ' +
        'windows with their p20–p80 spread, one fence per window.',
    ),
    el(
      'div',
      { class: 'controls' },
      el('label', {}, 'Shapes (B×C) ', shapes),
      el('label', {}, 'Linear sizes (rows×H×V) ', linearSizes),
      el('label', {}, 'Windows ', windows),
      el('label', {}, 'Run ', sweep),
      start,
      stop,
    ),
    status,
    out,
  );

  async function run(params?: URLSearchParams): Promise<boolean> {
    if (params?.get('shapes')) shapes.value = params.get('shapes')!;
    if (params?.get('windows')) windows.value = params.get('windows')!;
    if (params?.get('sweep')) sweep.value = params.get('sweep')!;
    if (params?.get('linear')) {
      linearSizes.value = params.get('linear')!;
      sweep.value = 'linear';
    }
    return ctx
      .run('kernel', async (signal) => {
        const named: KernelSweep | null =
          sweep.value === 'vocab' || sweep.value === 'topk' ? sweep.value : null;
        const linear = sweep.value === 'linear' ? parseLinearSizes(linearSizes.value) : null;
        const parsed = named ? sweepShapes(named) : linear ? [] : parseShapes(shapes.value);
        const partial: KernelShapeResult[] = [];
        const count =
          parsed.length + (named === 'topk' ? topKSweepShapes().length : 0) + (linear?.length ?? 0);
        setStatus(status, `running ${count} shapes…`);
        const report = await runKernelBenchmark({
          device: ctx.gpu.device,
          ceilingShader,
          shapes: parsed,
          sweep: named,
          ...(linear ? { topK: null, linear } : {}),
          windows: Number(windows.value),
          windowMs: 250,
          alpha: 0.1,
          temperature: 10,
          seed: 1234,
          meta: {
            adapter: ctx.gpu.description,
            software: ctx.gpu.software,
            commit: BUILD.commit,
            versions: pageVersions(),
          },
          signal,
          onProgress: (line) => {
            setStatus(status, line);
            emit({ type: 'progress', task: 'kernel', line });
          },
          onShape: (r, i, n) => {
            partial.push(r);
            renderKernelResults(out, partial);
            const line = `${r.batch}×${r.classes}: fused ${r.fused.p50.toFixed(3)} ms, stock ${r.stock.p50.toFixed(3)} ms, ×${r.speedup.toFixed(1)} (${i + 1}/${n})`;
            setStatus(status, line);
            emit({ type: 'progress', task: 'kernel', line });
          },
          onTopKShape: (r, i, n) => {
            const line = `${formatTopKLine(r)} (${i + 1}/${n})`;
            setStatus(status, line);
            emit({ type: 'progress', task: 'kernel', line });
          },
          onLinearShape: (r, i, n) => {
            const line = `${formatLinearLine(r)} (${i + 1}/${n})`;
            setStatus(status, line);
            emit({ type: 'progress', task: 'kernel', line });
          },
        });
        renderKernelReport(out, report);
        if (report.topK && report.topK.length > 0) {
          out.append(
            el('h3', {}, 'Top-K teacher: fused sparse vs fused dense vs stock sparse'),
            el('pre', {}, formatTopKTable(report.topK)),
          );
        }
        if (report.linear && report.linear.length > 0) {
          out.append(
            el('h3', {}, 'Linear head: fused linear vs matMul + fused loss vs matMul + stock'),
            el('pre', {}, formatLinearTable(report.linear)),
          );
        }
        setStatus(
          status,
          report.complete ? `done in ${(report.totalWallMs / 1000).toFixed(1)} s` : 'stopped',
          report.complete ? 'ok' : 'warn',
        );
        emit({ type: 'result', task: 'kernel', report });
      })
      .catch((err: unknown) => {
        setStatus(status, `failed: ${errorText(err)}`, 'error');
        return false;
      });
  }

  return { run };
}
