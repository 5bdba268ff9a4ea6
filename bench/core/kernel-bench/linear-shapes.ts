/**
 * The linear-head mode's sizes (`--linear`, `--linear-sizes`): `rows × H × V`, a student head
 * `hidden [rows, H] · weight [H, V] + bias [V]` and a teacher head of the same shape, and the
 * arithmetic floor of one forward+backward step.
 */

/** A linear-head size: rows, hidden width H, vocabulary V. */
export type LinearShape = readonly [number, number, number];

/** The default grid: H ∈ {256, 768} × V ∈ {32768, 131072} × rows ∈ {512, 2048}. */
export const LINEAR_GRID_ROWS = [512, 2048] as const;
export const LINEAR_GRID_HIDDEN = [256, 768] as const;
export const LINEAR_GRID_VOCAB = [32768, 131072] as const;

/** The default grid as a list, by rows, then H, then V. */
export function linearGridShapes(): [number, number, number][] {
  const shapes: [number, number, number][] = [];
  for (const rows of LINEAR_GRID_ROWS) {
    for (const h of LINEAR_GRID_HIDDEN) {
      for (const v of LINEAR_GRID_VOCAB) shapes.push([rows, h, v]);
    }
  }
  return shapes;
}

/** `--linear-sizes`' default: the whole grid. */
export const DEFAULT_LINEAR_SIZES = 'grid';

/**
 * `"512x256x32768,64x32x1024"` (rows x H x V) → the sizes; `"grid"` (or "") → the default grid.
 * Throws on a malformed entry, naming the flag.
 */
export function parseLinearSizes(list: string): [number, number, number][] {
  const text = list.trim();
  if (text === '' || text === 'grid') return linearGridShapes();
  return text.split(',').map((s) => {
    const m = /^(\d+)x(\d+)x(\d+)$/.exec(s.trim());
    if (!m) {
      throw new Error(
        `--linear-sizes: expected entries like 512x256x32768 (rows x H x V), got "${s}"`,
      );
    }
    const shape = [m[1]!, m[2]!, m[3]!].map((x) => parseInt(x, 10)) as [number, number, number];
    if (!shape.every((x) => x > 0)) {
      throw new Error(`--linear-sizes: sizes must be positive, got "${s}"`);
    }
    return shape;
  });
}

/** `rowsxHxV`, the name of a linear size in files and tables. */
export function linearShapeName([rows, h, v]: LinearShape): string {
  return `${rows}x${h}x${v}`;
}

/** `rows×H×V` for tables. */
export function linearShapeLabel([rows, h, v]: LinearShape): string {
  return `${rows}×${h}×${v}`;
}

/** The FLOPs of one `[rows, H] · [H, V]` product: 2 · rows · H · V. */
export function productFlops([rows, h, v]: LinearShape): number {
  return 2 * rows * h * v;
}
