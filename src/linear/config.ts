/** The linear op's options: `distillationLoss`'s, resolved by its own rules, and three more. */
import { resolveConfig, type DistillationLossConfig, type ResolvedConfig } from '../config.js';
import {
  DEFAULT_LINEAR_MEMORY_BUDGET_BYTES,
  type FusedLinearDistillationLossConfig,
} from './types.js';

/** What the op computes a head's logits with: z' = softCap(logitScale · (hidden · W + b)). */
export interface HeadTransform {
  readonly logitScale: number;
  /** The cap, or null for none. */
  readonly softCap: number | null;
}

/** A checked config: the loss's, the transform, and the budget. */
export interface ResolvedLinearConfig {
  readonly loss: ResolvedConfig;
  readonly transform: HeadTransform;
  readonly memoryBudgetBytes: number;
}

function positiveFinite(value: unknown, name: string, op: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${op}: config.${name} must be a finite number > 0, got ${String(value)}`);
  }
  return value;
}

/** Fills in defaults and throws an error naming the field for a bad one. */
export function resolveLinearConfig(
  config: FusedLinearDistillationLossConfig = {},
  op: string,
): ResolvedLinearConfig {
  if (config === null || typeof config !== 'object') {
    throw new TypeError(`${op}: config must be an object, got ${String(config)}`);
  }
  const { logitScale, softCap, memoryBudgetBytes, ...lossConfig } = config;
  const budget =
    memoryBudgetBytes === undefined
      ? DEFAULT_LINEAR_MEMORY_BUDGET_BYTES
      : positiveFinite(memoryBudgetBytes, 'memoryBudgetBytes', op);
  if (!Number.isInteger(budget)) {
    throw new RangeError(
      `${op}: config.memoryBudgetBytes must be a whole number of bytes, got ${budget}`,
    );
  }
  return {
    loss: resolveConfig(lossConfig, op),
    transform: {
      logitScale: logitScale === undefined ? 1 : positiveFinite(logitScale, 'logitScale', op),
      softCap: softCap === undefined ? null : positiveFinite(softCap, 'softCap', op),
    },
    memoryBudgetBytes: budget,
  };
}

/** The resolved loss config as `distillationLoss` takes it, with another reduction. */
export function chunkLossConfig(
  cfg: ResolvedConfig,
  reduction: 'sum' | 'none',
  returnComponents: boolean,
): DistillationLossConfig {
  return {
    alpha: cfg.alpha,
    temperature: cfg.temperature,
    temperatureSquared: cfg.temperatureSquared,
    reduction,
    divergence: cfg.divergence,
    ...(cfg.divergence === 'jsd' ? { beta: cfg.beta } : {}),
    ...(cfg.hasIgnoreIndex ? { ignoreIndex: cfg.ignoreIndex } : {}),
    returnComponents,
  };
}
