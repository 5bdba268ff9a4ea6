/**
 * The op's configuration: the public shape, its defaults and its validation.
 *
 * Design note: the resolved config is a flat record of primitives so that it can travel as
 * tfjs kernel attributes (and into a pipeline cache key). New options (float16 inputs, …) add
 * fields here, not new ops; a new divergence is one entry in src/divergences.ts.
 */

/** How per-row losses are combined. */
export type Reduction = 'mean' | 'sum' | 'none';

export const REDUCTIONS: readonly Reduction[] = ['mean', 'sum', 'none'];

/**
 * The soft term's divergence between the teacher's p = softmax(t / T) and the student's
 * q = softmax(s / T): 'forward-kl' KL(p ‖ q), 'reverse-kl' KL(q ‖ p), 'jsd' the generalized
 * Jensen–Shannon divergence β·KL(p ‖ M) + (1 − β)·KL(q ‖ M), M = β·p + (1 − β)·q.
 * Each is described once, in src/divergences.ts.
 */
export type Divergence = 'forward-kl' | 'reverse-kl' | 'jsd';

export const DIVERGENCE_NAMES: readonly Divergence[] = ['forward-kl', 'reverse-kl', 'jsd'];

/** β of 'jsd' when none is given: the classical, symmetric Jensen–Shannon divergence. */
export const DEFAULT_JSD_BETA = 0.5;

/** Options of {@link distillationLoss}. */
export interface DistillationLossConfig {
  /** Weight of the hard-label cross-entropy, in [0, 1]. Default 0.1 (Keras example). */
  alpha?: number;
  /** Softmax temperature T, finite and > 0. Default 10 (Keras example). */
  temperature?: number;
  /** Multiply the KL term by T² (Hinton et al.) so its gradient scale is T-independent. Default true. */
  temperatureSquared?: boolean;
  /**
   * 'mean' over the counted rows (default), 'sum' over rows, or 'none' for the per-row losses
   * in the labels' (leading) shape.
   */
  reduction?: Reduction;
  /** The soft term's divergence. Default 'forward-kl' (Hinton et al.). */
  divergence?: Divergence;
  /** The mixture weight β of 'jsd', in (0, 1). Default 0.5. Only with `divergence: 'jsd'`. */
  beta?: number;
  /**
   * A class index that marks rows to ignore (e.g. −100 for padding tokens), int32 labels only:
   * such rows add nothing to the loss or its gradients and are not counted by 'mean' ('none'
   * gives them 0). An integer in the int32 range; default none.
   */
  ignoreIndex?: number;
  /** Return `{ loss, hardLoss, softLoss }` instead of the loss alone. Default false. */
  returnComponents?: boolean;
}

/**
 * The options of {@link stockDistillationLoss}: the Keras formula's. The other fields of
 * {@link DistillationLossConfig} may appear only with the values that formula has (forward KL,
 * every row counted, the loss alone), so that `{ ...DEFAULT_CONFIG, alpha: 0.5 }` fits and a
 * config asking for anything else does not compile.
 */
export interface StockDistillationLossConfig {
  alpha?: number;
  temperature?: number;
  temperatureSquared?: boolean;
  reduction?: Reduction;
  divergence?: 'forward-kl';
  beta?: undefined;
  ignoreIndex?: undefined;
  returnComponents?: false;
}

/**
 * A config with every field filled in and checked: the kernels' attributes. Internal: users
 * pass a {@link DistillationLossConfig}; `hasIgnoreIndex` is not a config field and is refused
 * there, so no internal flag can ride in a user's config.
 */
export interface ResolvedConfig {
  readonly alpha: number;
  readonly temperature: number;
  readonly temperatureSquared: boolean;
  readonly reduction: Reduction;
  readonly divergence: Divergence;
  /** β of 'jsd'; {@link DEFAULT_JSD_BETA} (and unused) for the other divergences. */
  readonly beta: number;
  /** Whether `ignoreIndex` is in force (false: no row is ignored). */
  readonly hasIgnoreIndex: boolean;
  /** The ignored class index when `hasIgnoreIndex`; 0 (and unused) otherwise. */
  readonly ignoreIndex: number;
  readonly returnComponents: boolean;
}

/**
 * The defaults, as a user would write them (the Keras example's α and T). A plain config:
 * `{ ...DEFAULT_CONFIG, ignoreIndex: -100 }` or `{ ...DEFAULT_CONFIG, divergence: 'jsd' }` is
 * a valid config. `beta` has its own default, {@link DEFAULT_JSD_BETA}; `ignoreIndex` none.
 */
export const DEFAULT_CONFIG = Object.freeze({
  alpha: 0.1,
  temperature: 10,
  temperatureSquared: true,
  reduction: 'mean',
  divergence: 'forward-kl',
  returnComponents: false,
} as const satisfies DistillationLossConfig);

/** The public fields of {@link DistillationLossConfig}, in order. */
export const CONFIG_FIELDS = [
  'alpha',
  'temperature',
  'temperatureSquared',
  'reduction',
  'divergence',
  'beta',
  'ignoreIndex',
  'returnComponents',
] as const;

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

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
  const known = new Set<string>(CONFIG_FIELDS);
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
  const divergence = config.divergence ?? DEFAULT_CONFIG.divergence;
  if (!DIVERGENCE_NAMES.includes(divergence)) {
    throw new Error(
      `${op}: config.divergence must be one of ${DIVERGENCE_NAMES.map((d) => `'${d}'`).join(', ')}, ` +
        `got '${String(divergence)}'`,
    );
  }
  let beta = DEFAULT_JSD_BETA;
  if (config.beta !== undefined) {
    if (divergence !== 'jsd') {
      throw new Error(
        `${op}: config.beta applies to divergence 'jsd' only, got beta = ${String(config.beta)} ` +
          `with divergence '${divergence}'`,
      );
    }
    beta = config.beta;
    if (typeof beta !== 'number' || !Number.isFinite(beta) || beta <= 0 || beta >= 1) {
      throw new RangeError(
        `${op}: config.beta must be a number in (0, 1) (0 and 1 make the divergence vanish), ` +
          `got ${String(beta)}`,
      );
    }
  }
  const given = config.ignoreIndex;
  if (
    given !== undefined &&
    (typeof given !== 'number' ||
      !Number.isInteger(given) ||
      given < INT32_MIN ||
      given > INT32_MAX)
  ) {
    throw new RangeError(
      `${op}: config.ignoreIndex must be an integer in the int32 range (e.g. -100), or undefined ` +
        `for none, got ${String(given)}`,
    );
  }
  const returnComponents = config.returnComponents ?? DEFAULT_CONFIG.returnComponents;
  if (typeof returnComponents !== 'boolean') {
    throw new TypeError(
      `${op}: config.returnComponents must be a boolean, got ${String(returnComponents)}`,
    );
  }
  return {
    alpha,
    temperature,
    temperatureSquared,
    reduction,
    divergence,
    beta,
    hasIgnoreIndex: given !== undefined,
    ignoreIndex: given ?? 0,
    returnComponents,
  };
}

/**
 * Checks the options that depend on the label kind: `ignoreIndex` applies to int32 class
 * indices only (float32 one-hot / soft labels have no index to compare with), so giving it
 * with dense labels is an error rather than an option silently without effect.
 */
export function checkConfigForLabels(
  config: ResolvedConfig,
  labelKind: 'index' | 'dense',
  op = 'distillationLoss',
): void {
  if (config.hasIgnoreIndex && labelKind === 'dense') {
    throw new Error(
      `${op}: config.ignoreIndex (${config.ignoreIndex}) applies to int32 class-index labels ` +
        'only; with float32 one-hot / soft labels, leave it undefined',
    );
  }
}

/** The factor k in front of the KL term: T² when `temperatureSquared`, else 1. */
export function klFactor(config: ResolvedConfig): number {
  return config.temperatureSquared ? config.temperature * config.temperature : 1;
}
