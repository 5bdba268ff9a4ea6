/**
 * How the headless runner (bench/node/browser-runner.ts) and the page tests drive the app:
 * the URL says what to run (`?autorun=kernel|distill|validate` plus that panel's settings),
 * and the page reports through `window.__benchEmit` (a function the runner exposes before the
 * page loads) and leaves its final state in `window.__benchState`. A person opening the same
 * URL sees the same run, with nobody listening.
 */
import type { DistillReport } from '../core/protocol.js';
import type { KernelReport } from '../core/kernel-bench/index.js';

export type Task = 'kernel' | 'distill' | 'validate';

/** A summary of a validation run, as the runner prints it. */
export interface ValidationSummary {
  kind: 'kernel-validation';
  adapter: string;
  level: string;
  passed: number;
  failed: number;
  cases: { name: string; pass: boolean; worstRatio: number | null; error?: string }[];
}

/** Events from the page to the runner. */
export type BenchEvent =
  | { type: 'log'; line: string }
  | { type: 'progress'; task: Task; line: string }
  | { type: 'result'; task: Task; report: DistillReport | KernelReport | ValidationSummary }
  | { type: 'done'; task: Task; ok: boolean; error?: string };

/** What the page leaves for the runner to poll. */
export interface BenchState {
  status: 'idle' | 'running' | 'done' | 'failed';
  task?: Task;
  error?: string;
}

interface AutomationGlobals {
  __benchEmit?: (event: BenchEvent) => void;
  __benchState?: BenchState;
}

const globals = window as unknown as AutomationGlobals;
globals.__benchState = { status: 'idle' };

export function emit(event: BenchEvent): void {
  globals.__benchEmit?.(event);
  if (event.type === 'done') {
    globals.__benchState = event.ok
      ? { status: 'done', task: event.task }
      : { status: 'failed', task: event.task, error: event.error ?? 'failed' };
  } else if (event.type === 'progress' && globals.__benchState?.status === 'idle') {
    globals.__benchState = { status: 'running', task: event.task };
  }
}

/** The run the URL asks for, or null. */
export function autorunRequest(): { task: Task; params: URLSearchParams } | null {
  const params = new URLSearchParams(location.search);
  const task = params.get('autorun');
  if (task === null) return null;
  if (task !== 'kernel' && task !== 'distill' && task !== 'validate') {
    throw new Error(`?autorun must be kernel, distill or validate; got "${task}"`);
  }
  return { task, params };
}
