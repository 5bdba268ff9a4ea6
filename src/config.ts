/**
 * The op's configuration: the public shape, its defaults and its validation.
 *
 * Design note: the resolved config is a flat record of primitives so that it can travel as
 * tfjs kernel attributes (and into a pipeline cache key). Later divergences (reverse KL,
 * generalized JSD), an ignore index or float16 inputs add fields here, not new ops.
 */

/** How per-row losses are combined. */
export type Reduction = 'mean' | 'sum' | 'none';

export const REDUCTIONS: readonly Reduction[] = ['mean', 'sum', 'none'];

/** Options of {@link distillationLoss} and {@link stockDistillationLoss}. */
export interface DistillationLossConfig {
  /** Weight of the hard-label cross-entropy, in [0, 1]. Default 0.1 (Keras example). */
  alpha?: number;
  /** Softmax temperature T, finite and > 0. Default 10 (Keras example). */
  temperature?: number;
  /** Multiply the KL term by T² (Hinton et al.) so its gradient scale is T-independent. Default true. */
  temperatureSquared?: boolean;
  /** 'mean' over rows (default), 'sum' over rows, or 'none' for a `[B]` vector. */
  reduction?: Reduction;
}

/** A config with every field filled in and checked. */
export interface ResolvedConfig {
  readonly alpha: number;
  readonly temperature: number;
  readonly temperatureSquared: boolean;
  readonly reduction: Reduction;
}

export const DEFAULT_CONFIG: ResolvedConfig = {
  alpha: 0.1,
  temperature: 10,
  temperatureSquared: true,
  reduction: 'mean',
};

/**
 * The temperatures accepted, all tested against the float64 reference (test/temperature.test.ts
 * covers both ends). Beyond them float32 itself gives out: (1 − α) T² overflows near T = 1e19,
 * logits / T near T = 1e-34 for logits of 1e4, and the kernels' running maxima start at
 * −1e30, so 1e30 / T must stay finite. A loss outside the range is refused, never guessed.
 */
export const TESTED_TEMPERATURE_RANGE = [1e-4, 1e8] as const;

/** Fills in defaults and throws a descriptive error for a bad field. */
export function resolveConfig(
  config: DistillationLossConfig = {},
  op = 'distillationLoss',
): ResolvedConfig {
  if (config === null || typeof config !== 'object') {
    throw new TypeError(`${op}: config must be an object, got ${String(config)}`);
  }
  const known = new Set(['alpha', 'temperature', 'temperatureSquared', 'reduction']);
  for (const key of Object.keys(config)) {
    if (!known.has(key)) {
      throw new Error(
        `${op}: unknown config field '${key}' (expected one of ${[...known].join(', ')})`,
      );
    }
  }
  const alpha = config.alpha ?? DEFAULT_CONFIG.alpha;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha < 0 || alpha > 1) {
    throw new RangeError(`${op}: config.alpha must be a number in [0, 1], got ${String(alpha)}`);
  }
  const temperature = config.temperature ?? DEFAULT_CONFIG.temperature;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature <= 0) {
    throw new RangeError(
      `${op}: config.temperature must be a finite number > 0, got ${String(temperature)}`,
    );
  }
  const [lowest, highest] = TESTED_TEMPERATURE_RANGE;
  if (temperature < lowest || temperature > highest) {
    throw new RangeError(
      `${op}: config.temperature must be in [${lowest}, ${highest}] (the range tested against ` +
        `the float64 reference), got ${temperature}`,
    );
  }
  const temperatureSquared = config.temperatureSquared ?? DEFAULT_CONFIG.temperatureSquared;
  if (typeof temperatureSquared !== 'boolean') {
    throw new TypeError(
      `${op}: config.temperatureSquared must be a boolean, got ${String(temperatureSquared)}`,
    );
  }
  const reduction = config.reduction ?? DEFAULT_CONFIG.reduction;
  if (!REDUCTIONS.includes(reduction)) {
    throw new Error(
      `${op}: config.reduction must be one of 'mean', 'sum', 'none', got '${String(reduction)}'`,
    );
  }
  return { alpha, temperature, temperatureSquared, reduction };
}

/** The factor k in front of the KL term: T² when `temperatureSquared`, else 1. */
export function klFactor(config: ResolvedConfig): number {
  return config.temperatureSquared ? config.temperature * config.temperature : 1;
}
