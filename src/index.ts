/**
 * tfjs-fused-distill: the knowledge-distillation loss and its gradient as fused WGSL kernels
 * on TensorFlow.js' WebGPU backend. Importing this module registers the kernels and their
 * gradient; it touches no `window` or `document`, so it imports cleanly in Node and browsers.
 * The float64 references and the numerics suite are in `tfjs-fused-distill/validation`.
 */
import { registerFusedDistillation } from './kernels/register.js';

registerFusedDistillation();

// The losses
export { distillationLoss, type DistillationLossComponents, type RowLosses } from './op.js';
export { stockDistillationLoss, KERAS_EPSILON } from './stock.js';
export { fusedLinearDistillationLoss } from './linear/op.js';
export {
  DEFAULT_LINEAR_MEMORY_BUDGET_BYTES,
  type FusedLinearDistillationLossConfig,
  type LinearHead,
  type LinearTeacher,
} from './linear/types.js';
export { topKTeacher } from './topk.js';
export { isSparseTeacher, type SparseTeacher } from './sparse-teacher.js';

// Their configuration and defaults
export {
  DEFAULT_CONFIG,
  DEFAULT_JSD_BETA,
  DIVERGENCE_NAMES,
  type DistillationLossConfig,
  type Divergence,
  type Reduction,
  type StockDistillationLossConfig,
} from './config.js';

// Limits
export { TESTED_TEMPERATURE_RANGE } from './config.js';
export { MAX_CLASSES } from './validate.js';
export { MAX_TOP_K } from './sparse-teacher.js';

// Training
export {
  Distiller,
  type DistillerCallbacks,
  type DistillerEvaluation,
  type DistillerFitArgs,
  type DistillerGradients,
  type DistillerHistory,
  type DistillerLossConfig,
  type DistillerOptions,
  type DistillerStepOptions,
  type DistillerStepResult,
  type DistillerTeacherCache,
  type DistillerTeacherLogits,
  type DistillerTeacherValue,
} from './distiller.js';

// Which plan the kernels take on an adapter (software rasterisers vs hardware GPUs)
export { classifyAdapter, type AdapterClass, type AdapterInfoLike } from './kernels/plan.js';
