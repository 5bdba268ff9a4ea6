/**
 * The losses the kernel benchmark's sides run: the config of both sides for a divergence
 * (`--divergence`, `--beta`), and the stock side's loss: stockDistillationLoss (the Keras
 * formula) for forward KL; for reverse KL and the JSD, which that function refuses by name,
 * the exact composition from stock ops (exactStockOpsDistillationLoss, what distillationLoss
 * runs off WebGPU). The report says which ({@link StockBaseline}).
 */
import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_JSD_BETA, DIVERGENCE_NAMES, type Divergence } from 'tfjs-fused-distill';
import { exactStockOpsDistillationLoss } from 'tfjs-fused-distill/validation';
import { kerasStockLoss, type LossFn, type TimedLossConfig } from '../lib/loss-timing.js';
import type { KernelReport, StockBaseline } from './report.js';

/** The divergences `--divergence` accepts: the package's own list. */
export const KERNEL_DIVERGENCES: readonly Divergence[] = DIVERGENCE_NAMES;

export const STOCK_BASELINE_TEXT: Record<StockBaseline, string> = {
  keras:
    'stockDistillationLoss, the Keras formula from stock ops (clipped softmaxes, forward KL), ' +
    'differentiated by tfjs autograd',
  'exact-composition':
    'the exact composition from stock ops (exactStockOpsDistillationLoss of ' +
    'tfjs-fused-distill/validation, what distillationLoss runs off WebGPU; its gradient a ' +
    "custom gradient of stock ops), since stockDistillationLoss has the Keras formula's " +
    'forward KL only',
};

/** The stock baseline a divergence is timed against. */
export function stockBaselineOf(divergence: Divergence): StockBaseline {
  return divergence === 'forward-kl' ? 'keras' : 'exact-composition';
}

/** The divergence and β as the report prints them: `forward-kl`, `jsd (β = 0.2)`. */
export function divergenceLabel(divergence: Divergence, beta: number | null | undefined): string {
  return divergence === 'jsd' ? `jsd (β = ${beta ?? DEFAULT_JSD_BETA})` : divergence;
}

/**
 * Checks `--divergence` and `--beta` (strings from the command line, or the options' values):
 * the divergence one of {@link KERNEL_DIVERGENCES} (default forward-kl); β a number in (0, 1),
 * for jsd only (default {@link DEFAULT_JSD_BETA} there; null for the others). Throws an error
 * that names the flag and what it accepts.
 */
export function parseDivergenceOptions(
  divergence: string | null | undefined,
  beta?: string | number | null,
): { divergence: Divergence; beta: number | null } {
  const name = divergence ?? 'forward-kl';
  if (!(KERNEL_DIVERGENCES as readonly string[]).includes(name)) {
    throw new Error(
      `--divergence: unknown divergence "${name}" (expected one of: ${KERNEL_DIVERGENCES.join(', ')})`,
    );
  }
  const d = name as Divergence;
  if (beta === undefined || beta === null) {
    return { divergence: d, beta: d === 'jsd' ? DEFAULT_JSD_BETA : null };
  }
  if (d !== 'jsd') {
    throw new Error(`--beta: applies to --divergence jsd only (got --divergence ${d})`);
  }
  const text = String(beta).trim();
  const b = typeof beta === 'number' ? beta : text === '' ? NaN : Number(text);
  if (!(Number.isFinite(b) && b > 0 && b < 1)) {
    throw new Error(
      `--beta: expected a number in (0, 1) (0 and 1 make the JSD vanish), got "${text}"`,
    );
  }
  return { divergence: d, beta: b };
}

/**
 * The config of both sides: alpha, temperature, the divergence and (jsd) β; forward KL's has
 * no `divergence` field, which is what the Keras formula takes.
 */
export function kernelLossConfig(options: {
  alpha: number;
  temperature: number;
  divergence?: Divergence | undefined;
  beta?: number | null | undefined;
}): TimedLossConfig {
  const { divergence, beta } = parseDivergenceOptions(options.divergence, options.beta);
  const base = { alpha: options.alpha, temperature: options.temperature };
  if (divergence === 'forward-kl') return base;
  return { ...base, divergence, ...(beta === null ? {} : { beta }) };
}

/** The exact composition as a {@link LossFn}: dense teacher logits only. */
const exactComposition: LossFn = (labels, student, teacher, config) => {
  if (!(teacher instanceof tf.Tensor)) {
    throw new Error('the exact composition baseline takes dense teacher logits only');
  }
  // The default 'mean' reduction: the loss is a scalar.
  return exactStockOpsDistillationLoss(labels, student, teacher, config) as tf.Scalar;
};

/** The stock side's loss for a divergence (see {@link StockBaseline}). */
export function stockLossFor(divergence: Divergence): LossFn {
  return stockBaselineOf(divergence) === 'keras' ? kerasStockLoss : exactComposition;
}

/**
 * A report's divergence, β and stock baseline; a report from before divergences has none:
 * forward KL against the Keras formula.
 */
export function reportDivergence(report: Pick<KernelReport, 'settings'>): {
  divergence: Divergence;
  beta: number | null;
  baseline: StockBaseline;
} {
  const divergence = report.settings.divergence ?? 'forward-kl';
  return {
    divergence,
    beta: divergence === 'jsd' ? (report.settings.beta ?? DEFAULT_JSD_BETA) : null,
    baseline: report.settings.stockBaseline ?? stockBaselineOf(divergence),
  };
}
