/**
 * The kernel benchmark's named sweeps and the targets its results are held to, declared once:
 * the runner times these shapes, the printed report and the docs' generated tables
 * (bench/core/results-table/) judge the figures against these targets.
 */

/**
 * The vocabulary sweep (`--sweep vocab`): C ∈ {1k, 4k, 32k, 128k, 256k} — binary thousands,
 * 1k = 1024, 4k = 4096, 32k = 32768, 128k = 131072, 256k = 262144 — × rows ∈ {64, 512, 2048},
 * plus the shapes the targets name (512 × 32768 is in the grid; 128 × 131072 is added).
 */
export const VOCAB_SWEEP_CLASSES = [1024, 4096, 32768, 131072, 262144] as const;
export const VOCAB_SWEEP_ROWS = [64, 512, 2048] as const;

/** The vocabulary sweep's targets, each at the shapes it names, `[B, C]`. */
export const VOCAB_TARGETS = {
  shapes: [
    [512, 32768],
    [128, 131072],
  ] as readonly (readonly [number, number])[],
  /** fused forward+backward ≤ this × the ceiling's time. */
  maxCeilingRatio: 2.2,
  /** stock / fused forward+backward ≥ this. */
  minSpeedup: 25,
} as const;

/** The top-K sweep (`--sweep topk`): C ∈ {32k, 128k} (32768, 131072) × K ∈ {8, 32, 128}. */
export const TOPK_SWEEP_ROWS = 256;
export const TOPK_SWEEP_CLASSES = [32768, 131072] as const;
export const TOPK_SWEEP_K = [8, 32, 128] as const;

/**
 * The bar at 256 × 32768, K = 32: the sparse fused step at most 0.7× the dense fused step's
 * time, and at least 25× faster than the stock composition, same run.
 */
export const TOPK_TARGETS = {
  shape: [256, 32768, 32] as readonly [number, number, number],
  maxSparseOverDense: 0.7,
  minStockOverSparse: 25,
} as const;
