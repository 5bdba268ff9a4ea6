/**
 * `distillationLoss`: the public op. Checks its inputs, then runs the fused kernels where
 * they are registered (webgpu) and the exact stock-op composition elsewhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkConfigForLabels, resolveConfig, type DistillationLossConfig } from './config.js';
import { composedDistillationLoss, composedDistillationLossComponents } from './composed.js';
import { fusedSupports } from './divergences.js';
import { FUSED_DISTILLATION_LOSS, ROW_STATS_WIDTH, type DistillAttrs } from './kernels/names.js';
import { effectiveBindingLimit, rowChunks } from './kernels/plan.js';
import { activeTape, deviceLimit, maxStorageBufferBindingSize } from './tfjs_internals.js';
import { checkInputs, MAX_CLASSES, type CheckedShapes } from './validate.js';

export type { DistillationLossComponents } from './composed.js';

/**
 * Which gradients the forward kernel writes. Without a tape, none. Under a tape, the
 * student's; the teacher's too when its logits can be differentiated (they come out of an op
 * recorded on the tape, or are a trainable variable). A teacher gradient asked for anyway is
 * still exact: the backward pass then recomputes it from the saved row statistics.
 */
function gradientsToWrite(teacherLogits: tf.Tensor): DistillAttrs['writeGradients'] {
  const tape = activeTape();
  if (tape === null) return 'none';
  if (teacherLogits instanceof tf.Variable && teacherLogits.trainable) return 'both';
  const id = teacherLogits.id;
  const onTape = tape.some((node) => node.outputs.some((o) => o.id === id));
  return onTape ? 'both' : 'student';
}

/**
 * The knowledge-distillation loss (Hinton et al. 2015), fused on WebGPU:
 *
 *   ℓ_b = α · CE(y_b, softmax(s_b)) + (1 − α) · k · KL(softmax(t_b / T) ‖ softmax(s_b / T)),
 *   k = T² (temperatureSquared, default) or 1; the result is mean_b ℓ_b, Σ_b ℓ_b or `[B]`.
 *
 * Differentiable with respect to both logits (exact gradients; the teacher's is computed only
 * when the tape can ask for it). Labels are constants. Under a tape the forward kernel also
 * writes the gradients, so the backward pass is at most one scaling by the upstream gradient. An integer label outside `[0, C)` makes
 * its row's loss NaN (it is never used as an address).
 *
 * Logits may have any rank ≥ 2, `[..., C]` (e.g. `[batch, sequence, C]`): every leading index
 * is a row. Inputs larger than one WebGPU storage binding are dispatched in chunks of rows.
 *
 * @param labels int32 class indices of the logits' leading shape (`[B]` for `[B, C]`), or
 *   float32 one-hot / soft labels of the logits' shape.
 * @param studentLogits float32 `[..., C]`.
 * @param teacherLogits float32 `[..., C]`, the student's shape (pad a smaller vocabulary with
 *   −Infinity logits).
 * @param config `{alpha = 0.1, temperature = 10, temperatureSquared = true, reduction = 'mean'}`.
 * @returns a scalar for 'mean' / 'sum', the per-row losses in the leading shape for 'none'.
 *   With `returnComponents: true`, `{ loss, hardLoss, softLoss }` (DistillationLossComponents):
 *   on WebGPU from the same forward pass (the row statistics hold CE_b and KL_b; one more
 *   dispatch writes both components), each differentiable (its gradient is the loss's at
 *   α = 1 or α = 0, one backward dispatch per component differentiated).
 */
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig & { reduction?: 'mean' | 'sum' },
): tf.Scalar;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config: DistillationLossConfig & { reduction: 'none' },
): tf.Tensor1D;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig,
): tf.Tensor;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig,
): tf.Tensor {
  const op = 'distillationLoss';
  const shapes = checkInputs(labels, studentLogits, teacherLogits, op, MAX_CLASSES);
  const cfg = resolveConfig(config, op);
  checkConfigForLabels(cfg, shapes.labelKind, op);
  const backendName = tf.getBackend();
  const unfused = tf.getKernel(FUSED_DISTILLATION_LOSS, backendName) ? fusedSupports(cfg) : null;
  if (!tf.getKernel(FUSED_DISTILLATION_LOSS, backendName) || unfused !== null) {
    if (unfused !== null) checkCompositionFits(shapes, unfused, op);
    // The exact composition (src/composed.ts) takes [..., C] rows itself.
    // returnComponents: `{ loss, hardLoss, softLoss }` at run time. The overloads above are
    // unchanged (stockDistillationLoss must stay assignable to `typeof distillationLoss`):
    // callers cast, until both ops' signatures gain the components overload together.
    return cfg.returnComponents
      ? (composedDistillationLossComponents(
          labels,
          studentLogits,
          teacherLogits,
          shapes,
          cfg,
        ) as unknown as tf.Tensor)
      : composedDistillationLoss(labels, studentLogits, teacherLogits, shapes, cfg);
  }
  checkDeviceLimits(shapes, op);
  const attrs: DistillAttrs = {
    ...cfg,
    writeGradients: gradientsToWrite(teacherLogits),
    gradients: 'student',
  };
  const run = () =>
    tf
      .engine()
      .runKernel(
        FUSED_DISTILLATION_LOSS,
        { labels, studentLogits, teacherLogits },
        attrs as unknown as tf.NamedAttrMap,
      ) as tf.Tensor[];
  if (cfg.returnComponents) {
    // `{ loss, hardLoss, softLoss }` from the same forward pass: the kernel's last two outputs
    // (src/kernels/names.ts), each differentiable (src/kernels/gradient.ts). Cast as above.
    return tf.tidy(() => {
      const out = run();
      const [hardLoss, softLoss] = out.slice(-2);
      return { loss: out[0]!, hardLoss: hardLoss!, softLoss: softLoss! };
    }) as unknown as tf.Tensor;
  }
  return tf.tidy(() => run()[0]!);
}

/**
 * The composition on WebGPU is made of tfjs' own programs, which bind whole tensors: past
 * maxStorageBufferBindingSize a binding fails validation and tfjs returns zeros without an
 * error. A loss must never be silently wrong, so such inputs are refused here, before anything
 * is dispatched, with the reason they are not fused.
 */
function checkCompositionFits(shapes: CheckedShapes, unfused: string, op: string): void {
  const bytes = shapes.batch * shapes.classes * 4;
  const limit = maxStorageBufferBindingSize();
  if (bytes > limit) {
    throw new RangeError(
      `${op}: inputs of shape [${[...shapes.leadingShape, shapes.classes].join(', ')}] need ` +
        `${bytes}-byte buffers, more than this adapter's maxStorageBufferBindingSize (${limit}); ` +
        `this config runs on the stock-op composition (${unfused}), which cannot split them. ` +
        'Split the rows, or use a config the fused kernels run (forward KL)',
    );
  }
}

/**
 * What the device must allow, checked before anything is dispatched (a RangeError that says
 * which limit and by how much). Inputs larger than one storage binding are split into row
 * chunks (src/kernels/plan.ts, rowChunks), so the binding limit constrains only a single row
 * and the per-row arrays; each `[rows, C]` gradient is one buffer, within maxBufferSize.
 */
function checkDeviceLimits(shapes: CheckedShapes, op: string): void {
  const { batch, classes } = shapes;
  const what = `inputs of shape [${[...shapes.leadingShape, classes].join(', ')}]`;
  const bindingLimit = maxStorageBufferBindingSize();
  const statsBytes = batch * ROW_STATS_WIDTH * 4;
  if (statsBytes > bindingLimit) {
    throw new RangeError(
      `${op}: ${what} have ${batch} rows, whose row statistics (${statsBytes} bytes) exceed this ` +
        `device's maxStorageBufferBindingSize (${bindingLimit}): at most ` +
        `${Math.floor(bindingLimit / (ROW_STATS_WIDTH * 4))} rows per call`,
    );
  }
  const bufferBytes = batch * classes * 4;
  const bufferLimit = deviceLimit('maxBufferSize');
  if (bufferBytes > bufferLimit) {
    throw new RangeError(
      `${op}: ${what} need ${bufferBytes}-byte gradient buffers, more than this device's ` +
        `maxBufferSize (${bufferLimit}); split the batch into calls of at most ` +
        `${Math.floor(bufferLimit / (classes * 4))} rows`,
    );
  }
  try {
    rowChunks(
      batch,
      classes,
      effectiveBindingLimit(bindingLimit),
      deviceLimit('minStorageBufferOffsetAlignment'),
    );
  } catch (err) {
    throw new RangeError(`${op}: ${what}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}
