/**
 * The kernel benchmark's shapes: the `--shapes` and `--topk` lists, the named sweeps' shapes,
 * and which top-K shapes a divergence allows (a top-K teacher is forward KL only).
 */
import type { Divergence } from 'tfjs-fused-distill';
import {
  TOPK_SWEEP_CLASSES,
  TOPK_SWEEP_K,
  TOPK_SWEEP_ROWS,
  VOCAB_SWEEP_CLASSES,
  VOCAB_SWEEP_ROWS,
  VOCAB_TARGETS,
} from './targets.js';

/** The shapes the CLI times by default, `BxC` comma-separated. */
export const DEFAULT_KERNEL_SHAPES = '64x10,1024x10,64x1000,256x32768';

/** `"64x10,256x32768"` → `[[64, 10], [256, 32768]]`; throws on a malformed entry. */
export function parseShapes(list: string): [number, number][] {
  return list.split(',').map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--shapes: expected entries like 64x10, got "${s}"`);
    const shape: [number, number] = [parseInt(m[1]!, 10), parseInt(m[2]!, 10)];
    if (!(shape[0] > 0 && shape[1] > 0)) {
      throw new Error(`--shapes: sizes must be positive, got "${s}"`);
    }
    return shape;
  });
}

/** `BxC`, the name of a dense shape in files and tables. */
export function shapeName([b, c]: readonly [number, number]): string {
  return `${b}x${c}`;
}

export const KERNEL_SWEEPS = ['vocab', 'topk'] as const;
export type KernelSweep = (typeof KERNEL_SWEEPS)[number];

/**
 * The dense shapes of a sweep, by rows then classes (the grid, then the target shapes not in
 * it). The `topk` sweep has none: its shapes are {@link topKSweepShapes}.
 */
export function sweepShapes(sweep: KernelSweep): [number, number][] {
  if (sweep === 'topk') return [];
  if (sweep !== 'vocab') {
    throw new Error(`unknown sweep "${String(sweep)}" (expected: ${KERNEL_SWEEPS.join(', ')})`);
  }
  const shapes: [number, number][] = [];
  for (const rows of VOCAB_SWEEP_ROWS) {
    for (const classes of VOCAB_SWEEP_CLASSES) shapes.push([rows, classes]);
  }
  for (const [rows, classes] of VOCAB_TARGETS.shapes) {
    if (!shapes.some(([b, c]) => b === rows && c === classes)) shapes.push([rows, classes]);
  }
  return shapes.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** A sparse (top-K) teacher shape: rows B, classes C, entries K per row. */
export type TopKShape = readonly [number, number, number];

/** The sparse shapes the CLI times by default (`BxCkK`, comma-separated): the bar's shape. */
export const DEFAULT_TOPK_SHAPES = '256x32768k32';

/** `"256x32768k32,64x1000k8"` → `[[256, 32768, 32], [64, 1000, 8]]`; "" or "none" → []. */
export function parseTopKShapes(list: string): [number, number, number][] {
  const text = list.trim();
  if (text === '' || text === 'none') return [];
  return text.split(',').map((s) => {
    const m = /^(\d+)x(\d+)k(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--topk: expected entries like 256x32768k32 (BxCkK), got "${s}"`);
    const [b, c, k] = [m[1]!, m[2]!, m[3]!].map((x) => parseInt(x, 10)) as [number, number, number];
    if (!(b > 0 && c > 0 && k > 0)) throw new Error(`--topk: sizes must be positive, got "${s}"`);
    if (k > c) throw new Error(`--topk: K must be at most C, got "${s}"`);
    return [b, c, k];
  });
}

/** The top-K sweep's shapes, by classes then K. */
export function topKSweepShapes(): [number, number, number][] {
  return TOPK_SWEEP_CLASSES.flatMap((c) =>
    TOPK_SWEEP_K.map((k): [number, number, number] => [TOPK_SWEEP_ROWS, c, k]),
  );
}

/** `BxCkK`, the name of a top-K shape in files and tables. */
export function topKShapeName([b, c, k]: TopKShape): string {
  return `${b}x${c}k${k}`;
}

/**
 * Refuses top-K shapes (given, or the `topk` sweep) with a divergence other than forward KL:
 * a top-K teacher is forward KL only.
 */
export function checkTopKDivergence(
  topKShapes: readonly TopKShape[],
  sweep: KernelSweep | null,
  divergence: Divergence,
): void {
  if (divergence === 'forward-kl' || topKShapes.length === 0) return;
  const [what, instead] =
    sweep === 'topk'
      ? ['--sweep topk', 'another sweep']
      : [`--topk ${topKShapes.map(topKShapeName).join(',')}`, '--topk none'];
  throw new Error(
    `--divergence ${divergence}: ${what} times top-K teachers, which are forward-kl only ` +
      `(use ${instead}, or --divergence forward-kl)`,
  );
}

/**
 * The top-K shapes of a command line: `--topk`'s list (`given`: set on the command line, not
 * its default). With a divergence other than forward KL: none when `--topk` was left at its
 * default, an error when shapes were given or the sweep is `topk` (top-K teachers are forward
 * KL only). A `vocab` sweep times no top-K shape whatever the list.
 */
export function topKShapesFor(
  list: string,
  given: boolean,
  sweep: KernelSweep | null,
  divergence: Divergence,
): [number, number, number][] {
  if (sweep === 'topk') checkTopKDivergence(topKSweepShapes(), sweep, divergence);
  const shapes = divergence === 'forward-kl' || given ? parseTopKShapes(list) : [];
  if (sweep === null) checkTopKDivergence(shapes, sweep, divergence);
  return shapes;
}
