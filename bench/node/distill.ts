/**
 * The distillation benchmark (`npm run bench`): the Keras knowledge-distillation protocol on
 * MNIST, with the fused WGSL loss and with the stock-op loss, on the current WebGPU adapter.
 * Prints a table; writes JSON and CSV under bench/results/ (see bench/core/protocol.ts).
 *
 *   npm run bench                               # 'full' on a GPU, 'quick' on a software one
 *   npm run bench -- --preset smoke --data-dir ../shared/data/mnist
 *   npm run bench -- --save-teacher teacher.json, then --teacher teacher.json to reuse it
 *
 * Ctrl-C stops after the current step and writes what finished with `complete: false`.
 */
import { Command, CommanderError, Option } from 'commander';
import cliProgress from 'cli-progress';
// tfjs-layers registers the gradients of every stock op (tfjs-core alone registers none).
import '@tensorflow/tfjs-layers';
import { loadMnist, MnistDataError, type MnistDataset } from './data/mnist-node.js';
import { initNodeWebGPU, type WebGPUEnvironment } from './lib/node-webgpu.js';
import {
  choosePreset,
  describeReductions,
  PRESET_NAMES,
  resolveSettings,
  type BenchSettings,
  type SettingOverrides,
} from '../core/presets.js';
import {
  formatReport,
  limitSplit,
  runDistillBenchmark,
  type BenchData,
  type EpochProgress,
  type EpochRecord,
  type LoadedTeacher,
  type ProgressSink,
  type StepProgress,
} from '../core/protocol.js';
import { nodeRunHost } from './host.js';
import { nodeResultMeta } from './lib/results.js';
import { writeReport } from './report-files.js';
import { appendReportToResults } from './results-file.js';
import { loadTeacherCheckpoint } from './teacher-checkpoint-file.js';

/** The parsed command line: the preset's overrides and the run's own options. */
interface CliOptions extends SettingOverrides {
  preset?: string;
  dataDir?: string;
  dataset: MnistDataset;
  teacher?: string;
  saveTeacher?: string;
  json?: string;
  out: string;
  appendResults: boolean;
  progress: boolean;
}

/** Exit status of an interrupted run (128 + SIGINT), as shells report Ctrl-C. */
const EXIT_INTERRUPTED = 130;

function integer(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new Error(`${flag} expects an integer, got "${value}"`);
    return n;
  };
}

function filters(value: string): [number, number] {
  const m = /^(\d+),(\d+)$/.exec(value.trim());
  if (!m) throw new Error(`--teacher-filters expects two integers like 64,128, got "${value}"`);
  return [Number(m[1]), Number(m[2])];
}

const program = new Command()
  .name('bench')
  .description(
    'Knowledge distillation on MNIST with the fused and the stock distillation loss, ' +
      'on the current WebGPU adapter (the Keras example protocol)',
  )
  .addOption(
    new Option('--preset <name>', 'full | quick | smoke (default: by adapter)').choices(
      PRESET_NAMES,
    ),
  )
  .option('--batch-size <n>', 'batch size (default 64)', integer('--batch-size'))
  .option('--epochs-teacher <n>', 'teacher epochs (preset default)', integer('--epochs-teacher'))
  .option(
    '--epochs-distill <n>',
    'distillation epochs (preset default)',
    integer('--epochs-distill'),
  )
  .option('--epochs-scratch <n>', 'scratch epochs (preset default)', integer('--epochs-scratch'))
  .option('--train-limit <n>', 'use the first N training images', integer('--train-limit'))
  .option('--test-limit <n>', 'use the first N test images', integer('--test-limit'))
  .option('--seed <n>', 'seed of the initial weights and the batch order', integer('--seed'))
  .option('--data-dir <dir>', 'folder with the four IDX files (else MNIST_DIR, else the cache)')
  .addOption(
    new Option('--dataset <name>', 'dataset').choices(['mnist', 'fashion-mnist']).default('mnist'),
  )
  .option('--teacher <path>', 'load a saved teacher and skip teacher training')
  .option('--save-teacher <path>', 'save the trained teacher (atomically)')
  .addOption(
    new Option('--teacher-logits <mode>', 'teacher forward every step, or once up front').choices([
      'per-step',
      'cached',
    ]),
  )
  .option('--teacher-filters <f1,f2>', 'teacher conv filters (preset default)', filters)
  .option('--json <path>', 'write the JSON result here (default: in --out)')
  .option('--out <dir>', 'results directory', 'bench/results')
  .option('--append-results', 'add the rows to bench/results/all-results.csv', false)
  .option('--no-progress', 'no progress bars (a line per epoch instead)');

/** A cli-progress bar per epoch: loss, accuracy, steps/s and ETA. */
function barProgress(): ProgressSink {
  let bar: cliProgress.SingleBar | null = null;
  return {
    epochStart(info: EpochProgress) {
      bar = new cliProgress.SingleBar({
        format:
          '{run} epoch {epoch} [{bar}] {value}/{total} | loss {loss} | acc {acc} | ' +
          '{sps} steps/s | ETA {eta_formatted}',
        stream: process.stderr,
        hideCursor: null,
        etaBuffer: 20,
      });
      bar.start(info.steps, 0, {
        run: info.run,
        epoch: `${info.epoch}/${info.epochs}`,
        loss: '…',
        acc: '…',
        sps: '…',
      });
    },
    step(info: StepProgress) {
      const payload: Record<string, string> = { sps: info.stepsPerSecond.toFixed(2) };
      if (info.loss !== undefined) payload.loss = info.loss.toFixed(4);
      if (info.accuracy !== undefined) payload.acc = `${(100 * info.accuracy).toFixed(1)}%`;
      bar?.update(info.done, payload);
    },
    epochEnd() {
      bar?.stop();
      bar = null;
    },
  };
}

/** One line per epoch, for logs and pipes. */
function lineProgress(): ProgressSink {
  return {
    epochStart: () => undefined,
    step: () => undefined,
    epochEnd(info: EpochProgress & { record: EpochRecord }) {
      const r = info.record;
      process.stderr.write(
        `${info.run} epoch ${info.epoch}/${info.epochs}: ${r.steps} steps, loss ${r.loss.toFixed(4)}, ` +
          `acc ${(100 * r.accuracy).toFixed(2)} %, ${((r.steps * 1000) / r.wallMs).toFixed(2)} steps/s, ` +
          `${(r.wallMs / 1000).toFixed(1)} s, ${r.memory.numTensors} tensors\n`,
      );
    },
  };
}

function overrides(opts: CliOptions): SettingOverrides {
  return {
    batchSize: opts.batchSize,
    epochsTeacher: opts.epochsTeacher,
    epochsDistill: opts.epochsDistill,
    epochsScratch: opts.epochsScratch,
    trainLimit: opts.trainLimit,
    testLimit: opts.testLimit,
    seed: opts.seed,
    teacherLogits: opts.teacherLogits,
    teacherFilters: opts.teacherFilters,
  };
}

/** Loads the dataset (flag → env → cache → download) and cuts it to the limits. */
async function loadData(
  opts: CliOptions,
  trainLimit: number | null,
  testLimit: number | null,
): Promise<BenchData> {
  const mnist = await loadMnist({ dataset: opts.dataset, dataDir: opts.dataDir });
  return {
    name: mnist.dataset,
    source: mnist.source,
    train: limitSplit(mnist.train, trainLimit),
    test: limitSplit(mnist.test, testLimit),
  };
}

/**
 * Ctrl-C once: stop after the current step; again (a second later or more): quit at once.
 * Repeats within a second are ignored: under `npm run`, one keypress can reach this process
 * twice (from the terminal and relayed by a parent), which must not cost the partial results.
 */
function abortOnSigint(): AbortController {
  const controller = new AbortController();
  let first = 0;
  process.on('SIGINT', () => {
    if (controller.signal.aborted) {
      if (performance.now() - first > 1_000) process.exit(EXIT_INTERRUPTED);
      return;
    }
    first = performance.now();
    process.stderr.write('\nSIGINT: stopping after the current step (Ctrl-C again to quit now)\n');
    controller.abort();
  });
  return controller;
}

function loadTeacher(opts: CliOptions): LoadedTeacher | undefined {
  if (opts.teacher === undefined) return undefined;
  const teacher = loadTeacherCheckpoint(opts.teacher);
  if (teacher.info.dataset !== opts.dataset) {
    teacher.model.dispose();
    throw new Error(
      `${opts.teacher}: the teacher was trained on ${teacher.info.dataset}, not ${opts.dataset}`,
    );
  }
  return teacher;
}

/** Resolves and prints the preset, the settings and what they reduce. */
function chooseSettings(
  opts: CliOptions,
  env: WebGPUEnvironment,
  teacher: LoadedTeacher | undefined,
): { settings: BenchSettings; reason: string; reductions: string[] } {
  const { preset, reason } = choosePreset(opts.preset, env.software, env.adapter.description);
  const settings = resolveSettings(preset, overrides(opts));
  if (teacher) settings.teacherFilters = teacher.info.filters;
  const reductions = describeReductions(settings);
  if (teacher) {
    const { trainImages, epochs } = teacher.info;
    reductions.push(
      `teacher loaded from ${teacher.path} (filters [${teacher.info.filters}], trained on ` +
        `${trainImages} images for ${epochs} epochs), not trained in this run`,
    );
  }
  console.log(`preset: ${preset.name}: ${preset.summary}\n  why: ${reason}`);
  for (const r of reductions) console.log(`  reduced: ${r}`);
  if (reductions.length === 0) console.log('  nothing reduced: this is the Keras protocol');
  console.log(`  expected with the preset's own settings: ${preset.estimate}`);
  if (env.software && preset.name === 'full') {
    console.log('  WARNING: the full protocol on a software adapter takes hours per teacher epoch');
  }
  return { settings, reason, reductions };
}

async function main(): Promise<number> {
  const opts = program.parse().opts<CliOptions>();
  const env = await initNodeWebGPU();
  console.log(`adapter: ${env.adapter.description}${env.software ? ' (software)' : ''}`);
  const teacher = loadTeacher(opts);
  const { settings, reason, reductions } = chooseSettings(opts, env, teacher);
  const data = await loadData(opts, settings.trainLimit, settings.testLimit);
  console.log(`data: ${data.name} from ${data.source}`);
  const controller = abortOnSigint();
  const report = await runDistillBenchmark({
    settings,
    data,
    meta: {
      presetReason: reason,
      reductions,
      adapter: env.adapter,
      software: env.software,
      flags: { ...opts },
      ...nodeResultMeta(),
    },
    teacher,
    saveTeacherPath: opts.saveTeacher,
    host: nodeRunHost,
    signal: controller.signal,
    progress: opts.progress && process.stderr.isTTY ? barProgress() : lineProgress(),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  console.log('');
  console.log(formatReport(report));
  const files = writeReport(report, opts.out, opts.json);
  console.log(`wrote ${files.json}, ${files.csv} and ${files.curvesCsv}`);
  if (opts.appendResults) console.log(appendReportToResults(report));
  return report.complete ? 0 : EXIT_INTERRUPTED;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Data and argument errors are the user's to fix: their message says how. A stack trace only
    // helps with the unexpected, or when asked for (DEBUG=1).
    const expected = err instanceof MnistDataError || err instanceof CommanderError;
    const verbose = process.env.DEBUG !== undefined && process.env.DEBUG !== '';
    if (err instanceof Error)
      console.error(expected && !verbose ? err.message : (err.stack ?? err.message));
    else console.error(err);
    process.exit(1);
  },
);
