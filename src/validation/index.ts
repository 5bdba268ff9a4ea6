/**
 * `tfjs-fused-distill/validation`: what it takes to check the fused kernels on a user's own GPU.
 * The float64 references (the truth), the exact stock-op composition, and the numerics suite:
 * its cases, the per-element tolerances derived for them, and the runner the app's "Validate
 * kernels" panel uses:
 *
 *   const { passed, failed } = await runValidationSuite(validationSuite('quick'));
 *
 * Host-neutral (no Node or DOM API); it imports the main entry, so the kernels are registered.
 */
export {
  referenceDistillationLoss,
  type ReferenceInput,
  type ReferenceResult,
} from '../reference.js';
export {
  referenceSparseDistillationLoss,
  type SparseReferenceInput,
  type SparseReferenceResult,
} from '../reference-sparse.js';
export { exactStockOpsDistillationLoss } from './composition.js';
export { labelArray, mulberry32, uniformArray } from './random.js';
export {
  adapterOf,
  adapterPlan,
  describeCase,
  evaluateCase,
  makeInputs,
  referenceFor,
  runFused,
  specData,
  tolerancesFor,
  upstreamFor,
  type CaseInputs,
  type CaseReport,
  type CaseResult,
  type CaseSpec,
  type CaseSpecData,
  type CaseTolerances,
  caseConfig,
  type CheckName,
  type CheckReport,
  type EvaluateOptions,
  type MaskKind,
  type ReferenceConfig,
  type SparseTeacherSpec,
} from './cases.js';
export {
  compareElements,
  findMismatches,
  formatMismatches,
  withinTolerance,
  type Comparison,
  type Mismatch,
  type WorstElement,
} from './compare.js';
export { captureValidationError, tfDevice, withValidationScope } from './gpu-scope.js';
export { runValidationSuite, type SuiteRunOptions, type SuiteRunResult } from './runner.js';
export {
  coverageOf,
  COVERAGE_AXES,
  DIVERGENCE_FAMILY,
  DIVERGENCE_SHAPES,
  DIVERGENCE_TEMPERATURES,
  divergenceCases,
  divergenceName,
  edgeCases,
  edgeCasesOf,
  gpuPlanGridCases,
  gridCases,
  gridSpecs,
  largestCases,
  quickCases,
  QUICK_MAX_ELEMENTS,
  sharedCases,
  sparseCases,
  temperatureCases,
  validationSuite,
  type CaseFamily,
  type CoverageAxis,
  type EdgeKind,
  type NamedCase,
} from './suite.js';
export { CENTRE_LIMIT } from './tolerance.js';
export {
  divergenceTolerances,
  type BoundedDivergence,
  type DivergenceToleranceConfig,
  type DivergenceToleranceInput,
  type DivergenceTolerances,
} from './tolerance-divergence.js';
export {
  sparseEntries,
  sparseTolerances,
  type SparseToleranceConfig,
  type SparseToleranceInput,
  type SparseTolerances,
} from './tolerance-sparse.js';
export {
  linearLogits64,
  lossConfigOf,
  referenceFusedLinearDistillationLoss,
  transformLogits64,
  transformSlope64,
  type LinearReferenceFault,
  type LinearReferenceInput,
  type LinearReferenceResult,
  type LinearReferenceTeacher,
  makeLinearCase,
  type LinearCaseSpec,
} from './reference-linear.js';
export {
  gamma,
  linearTolerances,
  type LinearToleranceOptions,
  type LinearTolerances,
} from './tolerance-linear.js';
