/**
 * The benchmark app: starts WebGPU, shows the adapter, and wires the four panels (kernel
 * benchmark, distillation, kernel validation, results viewer). A URL with `?autorun=…` runs one
 * panel at once and reports to the headless runner (bench/page/automation.ts).
 */
// tfjs-layers registers the gradients of every stock op (tfjs-core alone registers none).
import '@tensorflow/tfjs-layers';
import { autorunRequest, emit, type Task } from './automation.js';
import { BUILD, browserName } from './build-info.js';
import { PageContext } from './context.js';
import { NOTABLE_FEATURES, startWebGPU, watchDeviceLoss, type PageGpu } from './gpu.js';
import { createDistillPanel } from './panels/distill-panel.js';
import { createKernelPanel } from './panels/kernel-panel.js';
import { createOpenPanel } from './panels/open-panel.js';
import { createValidatePanel } from './panels/validate-panel.js';
import { byId, el, errorText, setStatus } from './ui.js';

const TABS = ['kernel', 'distill', 'validate', 'open'] as const;

function showTab(name: (typeof TABS)[number]): void {
  for (const t of TABS) {
    byId(`tab-${t}`).setAttribute('aria-selected', String(t === name));
    byId(`panel-${t}`).hidden = t !== name;
  }
}

function banner(text: string | (string | Node)[], kind: 'warn' | 'error'): void {
  const node = byId('banner');
  node.replaceChildren(...(typeof text === 'string' ? [text] : text));
  node.dataset.kind = kind;
  node.hidden = false;
}

function renderAdapter(gpu: PageGpu): void {
  const info = gpu.info;
  const features = gpu.features.map((f) =>
    el(
      'span',
      { class: `feature${(NOTABLE_FEATURES as readonly string[]).includes(f) ? ' notable' : ''}` },
      f,
    ),
  );
  const missing = NOTABLE_FEATURES.filter((f) => !gpu.features.includes(f)).join(', ');
  const rows: [string, Node | string][] = [
    ['adapter', gpu.description.description + (gpu.software ? ' — software' : '')],
    ['vendor', info.vendor || '—'],
    ['architecture', info.architecture || '—'],
    ['device', info.device || '—'],
    ['description', info.description || '—'],
    [
      'features',
      el('span', {}, ...features, missing ? el('span', { class: 'meta' }, ` (no ${missing})`) : ''),
    ],
    ...Object.entries(gpu.limits).map(
      ([k, v]) =>
        [
          k,
          v >= 1 << 20
            ? `${v.toLocaleString('en-US')} (${(v / 2 ** 20).toFixed(0)} MiB)`
            : v.toLocaleString('en-US'),
        ] as [string, string],
    ),
  ];
  byId('adapter').replaceChildren(
    el('h2', {}, 'GPU adapter'),
    el('dl', { class: 'adapter' }, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
  );
  if (gpu.software) {
    banner(
      `This is a software adapter (${gpu.description.description}): WebGPU runs on the CPU here, ` +
        'so its timings say nothing about a real GPU, and the distillation defaults to a reduced ' +
        'preset. Enable hardware acceleration, or open this page on a machine with a GPU.',
      'warn',
    );
  }
}

function deviceLostBanner(ctx: PageContext, info: GPUDeviceLostInfo): void {
  const message = `${info.reason}${info.message ? `: ${info.message}` : ''}`;
  ctx.deviceLost(message);
  const restart = el('button', { type: 'button' }, 'Restart the page');
  restart.addEventListener('click', () => location.reload());
  banner(
    [
      `The GPU device was lost (${message}). This happens on a driver reset, when the GPU process ` +
        'crashes, or when another tab hogs the GPU. The run in progress was stopped; results ' +
        'already shown stay on the page. WebGPU cannot recover a lost device: ',
      restart,
    ],
    'error',
  );
  emit({ type: 'log', line: `GPU device lost: ${message}` });
}

async function main(): Promise<void> {
  byId('footer').textContent = `build ${BUILD.commit}, ${BUILD.builtAt}; ${Object.entries(
    BUILD.versions,
  )
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}; ${browserName()}`;
  for (const t of TABS) byId(`tab-${t}`).addEventListener('click', () => showTab(t));
  createOpenPanel(byId('panel-open'));
  let request: { task: Task; params: URLSearchParams } | null = null;
  try {
    request = autorunRequest();
    const gpu = await startWebGPU();
    renderAdapter(gpu);
    const ctx = new PageContext(gpu);
    watchDeviceLoss(gpu.device, (info) => deviceLostBanner(ctx, info));
    const panels = {
      kernel: createKernelPanel(byId('panel-kernel'), ctx),
      distill: createDistillPanel(byId('panel-distill'), ctx),
      validate: createValidatePanel(byId('panel-validate'), ctx),
    };
    emit({
      type: 'log',
      line: `adapter: ${gpu.description.description}${gpu.software ? ' (software)' : ''}`,
    });
    if (request) {
      showTab(request.task);
      await panels[request.task].run(request.params);
    }
  } catch (err) {
    setStatus(byId('adapter-status'), errorText(err), 'error');
    banner(errorText(err), 'error');
    console.error(err);
    emit({ type: 'done', task: request?.task ?? 'kernel', ok: false, error: errorText(err) });
  }
}

void main();
