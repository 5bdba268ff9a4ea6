/**
 * tfjs-fused-distill: the knowledge-distillation loss and its gradient as fused WGSL kernels
 * on TensorFlow.js' WebGPU backend. Importing this module registers the kernels and their
 * gradient; it touches no `window` or `document`, so it imports cleanly in Node and browsers.
 */
import { registerFusedDistillation } from './kernels/register.js';

registerFusedDistillation();

export { distillationLoss, type RowLosses } from './op.js';
export { stockDistillationLoss, KERAS_EPSILON } from './stock.js';
export {
  referenceSparseDistillationLoss,
  type SparseReferenceInput,
  type SparseReferenceResult,
} from './reference-sparse.js';
export {
  referenceDistillationLoss,
  type ReferenceInput,
  type ReferenceResult,
} from './reference.js';
export {
  DEFAULT_CONFIG,
  DEFAULT_JSD_BETA,
  TESTED_TEMPERATURE_RANGE,
  type DistillationLossConfig,
  type Divergence,
  type Reduction,
  type ResolvedConfig,
} from './config.js';
export {
  DIVERGENCES,
  fusedSupports,
  type DivergenceParameter,
  type DivergenceRow64,
  type DivergenceSpec,
  type TemperedRow64,
} from './divergences.js';
export { type DistillationLossComponents } from './composed.js';
export {
  Distiller,
  type DistillerCallbacks,
  type DistillerEvaluation,
  type DistillerFitArgs,
  type DistillerHistory,
  type DistillerOptions,
  type GradientsResult,
  type StepOptions,
  type StepResult,
  type TeacherLogitsMode,
} from './distiller.js';
export { MAX_CLASSES } from './validate.js';
export { MAX_TOP_K, isSparseTeacher, type SparseTeacher } from './sparse-teacher.js';
export { topKTeacher } from './topk.js';
export { choosePlan, type DistillPlan } from './kernels/plan.js';
export { FUSED_DISTILLATION_LOSS, FUSED_DISTILLATION_LOSS_GRAD } from './kernels/names.js';
