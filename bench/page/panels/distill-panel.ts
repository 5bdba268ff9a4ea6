/**
 * The distillation benchmark panel: the CLI's presets (bench/core/presets.ts) and protocol
 * (bench/core/protocol.ts) on this GPU, with start and stop, live loss and accuracy charts for
 * each run (teacher, fused, stock, scratch), and at the end the same table, charts and files as
 * the CLI's. MNIST or Fashion-MNIST come from the server, the browser cache, a download that is
 * checksum-verified, or the four files the user picks (bench/page/data/datasets-page.ts).
 */
import type { Chart } from 'chart.js';
import {
  choosePreset,
  describeReductions,
  limitSplit,
  PRESET_NAMES,
  PRESETS,
  resolveSettings,
  runDistillBenchmark,
  type ProgressSink,
  type RunName,
} from '../../core/index.js';
import { loadDatasetInPage } from '../data/datasets-page.js';
import { emit } from '../automation.js';
import { BUILD, pageVersions } from '../build-info.js';
import { lineChart, pushPoint } from '../charts.js';
import { runButtons, type PageContext } from '../context.js';
import { RUN_LABELS, renderDistillReport } from '../views/distill-view.js';
import { el, errorText, setStatus } from '../ui.js';

export interface DistillPanel {
  run(params?: URLSearchParams): Promise<boolean>;
}

type DatasetName = 'mnist' | 'fashion-mnist';

export function createDistillPanel(root: HTMLElement, ctx: PageContext): DistillPanel {
  const auto = choosePreset(undefined, ctx.gpu.software, ctx.gpu.description.description);
  const preset = el(
    'select',
    { 'aria-label': 'preset' },
    ...PRESET_NAMES.map((n) => el('option', { value: n, selected: n === auto.preset.name }, n)),
  );
  const dataset = el(
    'select',
    { 'aria-label': 'dataset' },
    el('option', { value: 'mnist' }, 'MNIST'),
    el('option', { value: 'fashion-mnist' }, 'Fashion-MNIST'),
  );
  const files = el('input', {
    type: 'file',
    multiple: true,
    accept: '.gz',
    'aria-label': 'dataset files',
  });
  const { start, stop } = runButtons(ctx, 'distill', 'Start distillation', () => void run());
  const about = el('p', { class: 'meta' });
  const status = el('p', { class: 'status', role: 'status' });
  const live = el('div', { class: 'charts' });
  const out = el('div', { class: 'results' });
  const describe = (): void => {
    const p = PRESETS[preset.value as keyof typeof PRESETS];
    about.textContent =
      `${p.name}: ${p.summary}. Expected: ${p.estimate}.` +
      (p.name === auto.preset.name ? ` (Default here: ${auto.reason}.)` : '');
  };
  preset.addEventListener('change', describe);
  describe();
  root.append(
    el(
      'p',
      {},
      'The Keras knowledge-distillation protocol: a teacher CNN, a student distilled from it with ' +
        'the fused loss and again with the stock loss (same weights, same batches), and the ' +
        'student from scratch. α = 0.1, T = 10, Adam.',
    ),
    el(
      'div',
      { class: 'controls' },
      el('label', {}, 'Preset ', preset),
      el('label', {}, 'Dataset ', dataset),
      el('label', {}, 'Or pick the four .gz files ', files),
      start,
      stop,
    ),
    about,
    status,
    live,
    out,
  );

  /** Live charts: a point per read-back window, per run. */
  function liveSink(): ProgressSink {
    live.replaceChildren();
    const series = (Object.keys(RUN_LABELS) as RunName[]).map((n) => ({
      name: n,
      label: RUN_LABELS[n],
      points: [] as { x: number; y: number }[],
    }));
    const loss: Chart<'line'> = lineChart(
      live,
      'Loss (live, per timed window)',
      'batch loss',
      series,
    );
    const acc: Chart<'line'> = lineChart(
      live,
      'Accuracy (live, per timed window)',
      'batch accuracy',
      series.map((s) => ({ ...s, points: [] })),
    );
    const stepsBefore = new Map<string, number>();
    return {
      epochStart(info) {
        if (info.epoch === 1) stepsBefore.set(info.run, 0);
        const line = `${RUN_LABELS[info.run]}: epoch ${info.epoch}/${info.epochs} (${info.steps} steps)`;
        setStatus(status, line);
        emit({ type: 'progress', task: 'distill', line });
      },
      step(info) {
        const x = (stepsBefore.get(info.run) ?? 0) + info.done;
        if (info.loss !== undefined) pushPoint(loss, RUN_LABELS[info.run], x, info.loss);
        if (info.accuracy !== undefined) pushPoint(acc, RUN_LABELS[info.run], x, info.accuracy);
        setStatus(
          status,
          `${RUN_LABELS[info.run]}: epoch ${info.epoch}/${info.epochs}, step ${info.done}/${info.steps}, ` +
            `${info.stepsPerSecond.toFixed(2)} steps/s` +
            (info.loss !== undefined ? `, loss ${info.loss.toFixed(4)}` : ''),
        );
      },
      epochEnd(info) {
        stepsBefore.set(info.run, (stepsBefore.get(info.run) ?? 0) + info.record.steps);
        const r = info.record;
        const line =
          `${RUN_LABELS[info.run]} epoch ${info.epoch}/${info.epochs}: loss ${r.loss.toFixed(4)}, ` +
          `accuracy ${(100 * r.accuracy).toFixed(2)} %, ${(r.wallMs / 1000).toFixed(1)} s`;
        emit({ type: 'progress', task: 'distill', line });
      },
    };
  }

  async function run(params?: URLSearchParams): Promise<boolean> {
    if (params?.get('preset')) preset.value = params.get('preset')!;
    if (params?.get('dataset')) dataset.value = params.get('dataset')!;
    describe();
    return ctx
      .run('distill', async (signal) => {
        const chosen = choosePreset(
          preset.value,
          ctx.gpu.software,
          ctx.gpu.description.description,
        );
        const settings = resolveSettings(chosen.preset);
        const picked = files.files ? Array.from(files.files) : [];
        setStatus(status, 'loading the dataset…');
        const loaded = await loadDatasetInPage({
          dataset: dataset.value as DatasetName,
          files: picked.length > 0 ? picked : undefined,
          signal,
          onProgress: (ev) => {
            const amount = ev.total ? ` ${Math.round((100 * ev.loaded) / ev.total)} %` : '';
            setStatus(status, `${ev.file}: ${ev.phase} (${ev.source})${amount}`);
          },
        });
        emit({
          type: 'progress',
          task: 'distill',
          line: `data: ${dataset.value} from ${loaded.source}`,
        });
        const report = await runDistillBenchmark({
          settings,
          data: {
            name: dataset.value,
            source: loaded.source,
            train: limitSplit(loaded.train, settings.trainLimit),
            test: limitSplit(loaded.test, settings.testLimit),
          },
          meta: {
            presetReason: chosen.reason.replace('--preset', 'chosen in the page:'),
            reductions: describeReductions(settings),
            adapter: ctx.gpu.description,
            software: ctx.gpu.software,
            flags: {
              host: 'browser',
              preset: preset.value,
              dataset: dataset.value,
              files: picked.length > 0,
            },
            commit: BUILD.commit,
            versions: pageVersions(),
          },
          signal,
          progress: liveSink(),
          log: (line) => emit({ type: 'log', line }),
        });
        renderDistillReport(out, report);
        setStatus(
          status,
          report.complete
            ? `done in ${(report.totalWallMs / 1000).toFixed(1)} s`
            : `stopped during ${report.interrupted?.during ?? 'a run'}: the finished runs are below`,
          report.complete ? 'ok' : 'warn',
        );
        emit({ type: 'result', task: 'distill', report });
      })
      .catch((err: unknown) => {
        setStatus(status, `failed: ${errorText(err)}`, 'error');
        return false;
      });
  }

  return { run };
}
