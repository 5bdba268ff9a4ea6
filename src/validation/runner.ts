/**
 * Runs a list of named cases one after the other on tfjs' active WebGPU backend, for a page:
 * a report per case as it finishes, a yield to the event loop between cases (the page stays
 * responsive), and an AbortSignal to stop between cases.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { AdapterClass } from '../kernels/plan.js';
import { adapterPlan, evaluateCase, type CaseReport } from './cases.js';
import type { NamedCase } from './suite.js';

export interface SuiteRunOptions {
  /** Called after each case with its report, its index and the number of cases. */
  onCase?: (report: CaseReport, index: number, total: number) => void;
  /** Checked between cases: once aborted, no further case starts. */
  signal?: AbortSignal;
}

export interface SuiteRunResult {
  /** One per case run, in order (fewer than the cases when aborted). */
  reports: CaseReport[];
  passed: number;
  failed: number;
  /** The plan class of the running adapter (the plan of cases that do not force one). */
  adapterPlan: AdapterClass;
  /** Whether the signal stopped the run before its last case. */
  aborted: boolean;
}

const nextTask = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Evaluates `cases` in order; throws only when tfjs' active backend is not 'webgpu'. */
export async function runValidationSuite(
  cases: readonly NamedCase[],
  options: SuiteRunOptions = {},
): Promise<SuiteRunResult> {
  if (tf.getBackend() !== 'webgpu') {
    throw new Error(
      `the kernels run on tfjs' 'webgpu' backend; the active one is '${tf.getBackend()}'`,
    );
  }
  const result: SuiteRunResult = {
    reports: [],
    passed: 0,
    failed: 0,
    adapterPlan: adapterPlan(),
    aborted: false,
  };
  for (let i = 0; i < cases.length; i++) {
    await nextTask();
    if (options.signal?.aborted) {
      result.aborted = true;
      break;
    }
    const report = await evaluateCase(cases[i]!.spec, { name: cases[i]!.name });
    result.reports.push(report);
    if (report.pass) result.passed++;
    else result.failed++;
    options.onCase?.(report, i, cases.length);
  }
  return result;
}
