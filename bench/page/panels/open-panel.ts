/**
 * Opens a result file written by the CLI (`npm run bench`, `npm run bench:kernel`) or by an
 * earlier run in the app, and shows the same table and charts a live run shows.
 */
import type { DistillReport } from '../../core/protocol.js';
import type { KernelReport } from '../../core/kernel-bench/index.js';
import { renderDistillReport } from '../views/distill-view.js';
import { renderKernelReport } from '../views/kernel-view.js';
import { el, errorText, setStatus } from '../ui.js';

/** Checks the parts the views read; a wrong file gets a message saying what it is not. */
export function parseResultFile(text: string, name: string): DistillReport | KernelReport {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${name} is not JSON: ${errorText(err)}`, { cause: err });
  }
  const kind = (value as { kind?: unknown }).kind;
  const version = (value as { schemaVersion?: unknown }).schemaVersion;
  if (kind !== 'distill-benchmark' && kind !== 'kernel-benchmark') {
    throw new Error(
      `${name} is not a result file of this benchmark (its "kind" is ${JSON.stringify(kind)}; ` +
        'expected "distill-benchmark" or "kernel-benchmark")',
    );
  }
  if (version !== 1)
    throw new Error(`${name}: schemaVersion ${String(version)} is not supported (expected 1)`);
  return value as DistillReport | KernelReport;
}

export function createOpenPanel(root: HTMLElement): void {
  const input = el('input', {
    type: 'file',
    accept: '.json,application/json',
    'aria-label': 'result file',
  });
  const status = el('p', { class: 'status', role: 'status' });
  const out = el('div', { class: 'results' });
  root.append(
    el(
      'p',
      {},
      'Open a result JSON written by `npm run bench`, `npm run bench:kernel`, ' +
        '`npm run bench:browser` or this page, to see its table and charts.',
    ),
    el('div', { class: 'controls' }, el('label', {}, 'Result file ', input)),
    status,
    out,
  );
  input.addEventListener('change', () => {
    const file = input.files?.[0];
    if (!file) return;
    void file.text().then(
      (text) => {
        try {
          const report = parseResultFile(text, file.name);
          if (report.kind === 'kernel-benchmark') renderKernelReport(out, report);
          else renderDistillReport(out, report);
          setStatus(status, `${file.name}: ${report.kind}`, 'ok');
        } catch (err) {
          out.replaceChildren();
          setStatus(status, errorText(err), 'error');
        }
      },
      (err: unknown) => setStatus(status, `${file.name}: ${errorText(err)}`, 'error'),
    );
  });
}
