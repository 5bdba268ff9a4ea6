/**
 * One fused-vs-reference case as a vitest assertion. The case itself (inputs, the fused op,
 * the float64 reference, the derived tolerances, the element-wise comparison) is
 * src/validation/cases.ts, shared with the app; `checkCase` turns its report into a
 * failure with the case's context and the table of the first mismatches.
 */
import { expect } from 'vitest';
import { evaluateCase, type CaseReport, type CaseSpec } from '../../src/validation/cases.js';
import { formatMismatches } from '../../src/validation/compare.js';

export {
  adapterOf,
  describeCase,
  evaluateCase,
  makeInputs,
  referenceFor,
  runFused,
  tolerancesFor,
  upstreamFor,
  type CaseInputs,
  type CaseReport,
  type CaseResult,
  type CaseSpec,
  type CaseTolerances,
} from '../../src/validation/cases.js';

/** Fails the test on a failed report: exception, validation error, leak, then each output. */
export function expectReportPasses(report: CaseReport): void {
  const { context } = report;
  if (report.error !== undefined) {
    const err = new Error(`${report.error} — ${context}`);
    if (report.errorStack) err.stack = `${err.message}\n${report.errorStack}`;
    throw err;
  }
  if (report.gpuValidationError !== undefined) {
    throw new Error(`WebGPU validation error: ${report.gpuValidationError} — ${context}`);
  }
  expect(report.leakedTensors, `leaked tensors — ${context}`).toBe(0);
  for (const check of report.checks) {
    if (check.mismatches > 0) {
      throw new Error(formatMismatches(check.what, check, context, check.columns));
    }
  }
  // Nothing above failed, so the report must say it passed.
  expect(report.pass, `report of ${context}`).toBe(true);
}

/** The whole check: fused vs float64 reference, values and gradients, element by element. */
export async function checkCase(spec: CaseSpec): Promise<CaseReport> {
  const report = await evaluateCase(spec);
  expectReportPasses(report);
  return report;
}
