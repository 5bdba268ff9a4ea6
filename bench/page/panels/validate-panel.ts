/**
 * "Validate kernels": the numerics suite's own cases and tolerances (bench/core/numerics/, the
 * same ones the test suite uses) on this GPU. Real GPUs use faster `exp` and `log` than the
 * software adapters the suite runs on in CI, so this is where a user learns whether the kernels
 * hold on their hardware. Pass/fail per case, with the worst element's error against its
 * tolerance.
 */
import {
  runValidationSuite,
  validationSuite,
  type CaseReport,
} from 'tfjs-fused-distill/validation';
import { emit, type ValidationSummary } from '../automation.js';
import { runButtons, type PageContext } from '../context.js';
import { download, el, errorText, setStatus } from '../ui.js';

export interface ValidatePanel {
  run(params?: URLSearchParams): Promise<boolean>;
}

/** The worst |error| / tolerance over a case's checks, or null when nothing was compared. */
function worstRatio(r: CaseReport): number | null {
  let worst: number | null = null;
  for (const c of r.checks) {
    if (c.worst && Number.isFinite(c.worst.ratio)) worst = Math.max(worst ?? 0, c.worst.ratio);
  }
  return worst;
}

function caseRow(r: CaseReport): HTMLTableRowElement {
  const ratio = worstRatio(r);
  const worstCheck = r.checks.reduce<CaseReport['checks'][number] | null>(
    (a, c) => (!a || (c.worst?.ratio ?? 0) > (a.worst?.ratio ?? 0) ? c : a),
    null,
  );
  const detail =
    r.error ??
    r.gpuValidationError ??
    (worstCheck?.worst
      ? `${worstCheck.what}[${worstCheck.worst.index}]: got ${worstCheck.worst.actual.toExponential(4)}, ` +
        `want ${worstCheck.worst.expected.toExponential(4)}, tolerance ${worstCheck.worst.tolerance.toExponential(2)}` +
        (worstCheck.mismatches > 0 ? `; ${worstCheck.mismatches} elements out of tolerance` : '')
      : '');
  return el(
    'tr',
    { class: r.pass ? 'pass' : 'fail' },
    el('td', {}, r.pass ? '✓ pass' : '✗ FAIL'),
    el('td', {}, r.name),
    el('td', {}, ratio === null ? '—' : ratio.toFixed(3)),
    el('td', {}, detail),
    el('td', {}, `${r.ms.toFixed(0)} ms`),
  );
}

export function createValidatePanel(root: HTMLElement, ctx: PageContext): ValidatePanel {
  const level = el(
    'select',
    { 'aria-label': 'suite' },
    el('option', { value: 'quick' }, 'quick (every axis value, a minute or two)'),
    el('option', { value: 'full' }, 'full (every shared case of the test suite)'),
  );
  const { start, stop } = runButtons(ctx, 'validate', 'Validate kernels', () => void run());
  const status = el('p', { class: 'status', role: 'status' });
  const body = el('tbody');
  const out = el(
    'div',
    { class: 'table-wrap' },
    el(
      'table',
      { class: 'validation' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ...['result', 'case', 'worst |error| / tolerance', 'worst element', 'time'].map((h) =>
            el('th', { scope: 'col' }, h),
          ),
        ),
      ),
      body,
    ),
  );
  const downloads = el('div', { class: 'downloads' });
  root.append(
    el(
      'p',
      {},
      'Each case runs the fused loss forward and backward and compares the loss and both ' +
        'gradients element by element with the float64 reference, within tolerances derived ' +
        'from the float32 error of each step (docs/numerics.md). A ratio below 1 passes.',
    ),
    el('div', { class: 'controls' }, el('label', {}, 'Suite ', level), start, stop),
    status,
    out,
    downloads,
  );

  async function run(params?: URLSearchParams): Promise<boolean> {
    if (params?.get('level')) level.value = params.get('level')!;
    let failed = 0;
    return ctx
      .run('validate', async (signal) => {
        body.replaceChildren();
        downloads.replaceChildren();
        const cases = validationSuite(level.value as 'quick' | 'full');
        const result = await runValidationSuite(cases, {
          signal,
          onCase: (report, i, n) => {
            body.append(caseRow(report));
            const line = `${i + 1}/${n} ${report.pass ? 'pass' : 'FAIL'} ${report.name}`;
            setStatus(status, line);
            emit({ type: 'progress', task: 'validate', line });
          },
        });
        failed = result.failed;
        const summary: ValidationSummary = {
          kind: 'kernel-validation',
          adapter: ctx.gpu.description.description,
          level: level.value,
          passed: result.passed,
          failed: result.failed,
          cases: result.reports.map((r) => ({
            name: r.name,
            pass: r.pass,
            worstRatio: worstRatio(r),
            ...(r.error ? { error: r.error } : {}),
          })),
        };
        const complete = result.reports.length === cases.length;
        setStatus(
          status,
          `${result.passed} passed, ${result.failed} failed of ${cases.length} cases` +
            (complete ? '' : ' (stopped)') +
            ` on ${ctx.gpu.description.description}`,
          result.failed > 0 ? 'error' : complete ? 'ok' : 'warn',
        );
        const button = el('button', { type: 'button', class: 'secondary' }, 'Validation JSON');
        button.addEventListener('click', () =>
          download(
            'kernel-validation.json',
            JSON.stringify({ ...summary, reports: result.reports }, null, 2),
            'application/json',
          ),
        );
        downloads.append(button);
        emit({ type: 'result', task: 'validate', report: summary });
        if (result.failed > 0) throw new Error(`${result.failed} validation case(s) failed`);
      })
      .catch((err: unknown) => {
        if (failed === 0) setStatus(status, `failed: ${errorText(err)}`, 'error');
        return false;
      });
  }

  return { run };
}
