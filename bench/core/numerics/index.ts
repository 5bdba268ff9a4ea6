/**
 * The numerics suite, host-neutral: the fused kernels against the float64 reference with the
 * derived per-element tolerances. The tests (test/helpers/cases.ts) assert on its reports; the
 * app's "Validate kernels" panel runs `validationSuite(level)` with `runValidationSuite`.
 */
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
