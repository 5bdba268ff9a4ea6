/**
 * What the tests of ignored rows, masks and components share: the bounds of rows that hold
 * −Infinity (derived on a finite stand-in), 'mean' over the counted rows, and the three
 * element-wise checks of a fused result against the float64 reference.
 */
import type { CaseInputs, CaseSpec } from '../../src/validation/cases.js';
import { expectClose } from './compare.js';

/** Per-element values or bounds of a loss and its two gradients. */
export interface Triple {
  value: ArrayLike<number>;
  gradStudent: ArrayLike<number>;
  gradTeacher: ArrayLike<number> | null;
}

/**
 * The inputs with every −Infinity replaced by a finite logit 40·T below its row's minimum, for
 * the tolerances only (the reference itself sees the −Infinity). `nanAsZero`: NaN logits (in
 * ignored rows, whose bounds do not count) become 0. An integer label equal to `ignoreIndex` is
 * no class: it becomes 0 for the bounds.
 */
export function finiteStandIn(
  spec: CaseSpec,
  inputs: CaseInputs,
  options: { ignoreIndex?: number; nanAsZero?: boolean } = {},
): CaseInputs {
  const { batch: B, classes: C } = spec;
  const fill = (x: Float32Array) => {
    const out = Float32Array.from(x);
    for (let b = 0; b < B; b++) {
      let min = Infinity;
      for (let c = 0; c < C; c++) {
        const v = x[b * C + c]!;
        if (Number.isFinite(v)) min = Math.min(min, v);
      }
      if (!Number.isFinite(min)) min = 0;
      for (let c = 0; c < C; c++) {
        if (out[b * C + c] === -Infinity) out[b * C + c] = min - 40 * spec.temperature;
        if (options.nanAsZero && Number.isNaN(out[b * C + c])) out[b * C + c] = 0;
      }
    }
    return out;
  };
  const labels =
    spec.labelKind === 'index' && options.ignoreIndex !== undefined
      ? Int32Array.from(inputs.labels, (l) => (l === options.ignoreIndex ? 0 : l))
      : inputs.labels;
  return { student: fill(inputs.student), teacher: fill(inputs.teacher), labels };
}

/**
 * The derived bounds for 'mean' over N counted rows instead of B: every bound scales by
 * B / max(N, 1) (an ignored row's own bounds are exact zeros either way).
 */
export function boundsOverCounted(
  spec: CaseSpec,
  tol: Triple & { gradTeacher: ArrayLike<number> },
  counted: ArrayLike<number>,
): Triple & { gradTeacher: number[] } {
  const n = Array.from(counted).reduce((a, b) => a + b, 0);
  const scale = spec.reduction === 'mean' ? spec.batch / Math.max(n, 1) : 1;
  const scaled = (x: ArrayLike<number>) => Array.from(x, (v) => v * scale);
  return {
    value: scaled(tol.value),
    gradStudent: scaled(tol.gradStudent),
    gradTeacher: scaled(tol.gradTeacher),
  };
}

/** The loss and both gradients, element by element, within `tol`. */
export function expectWithin(
  fused: Triple,
  ref: Triple,
  tol: Triple,
  context: string,
  classes: number,
): void {
  expectClose('loss value', fused.value, ref.value, tol.value, context);
  expectClose('∂L/∂student', fused.gradStudent, ref.gradStudent, tol.gradStudent, context, classes);
  if (fused.gradTeacher) {
    if (!ref.gradTeacher || !tol.gradTeacher) throw new Error(`no teacher reference — ${context}`);
    expectClose(
      '∂L/∂teacher',
      fused.gradTeacher,
      ref.gradTeacher,
      tol.gradTeacher,
      context,
      classes,
    );
  }
}
