/**
 * Is there a WebGPU adapter for Node? Asks Dawn (the `webgpu` package) for one exactly as the
 * tests and benchmarks do (tools/webgpu-node.ts, same adapter choice and environment
 * variables), prints which, and says whether a Chromium for test/browser.test.ts is present.
 *
 *   node --import tsx tools/find-adapter.ts
 *
 * Exit status: 0 an adapter was found; 2 none was found; 1 the check itself failed (a bad
 * FUSED_DISTILL_ADAPTER, Dawn missing or crashing, no answer within a minute).
 *
 * Pitfalls handled (see webgpu-node.ts): the object `create()` returns stays reachable
 * (installNodeWebGPU keeps it on a global) until the process ends, and the process always
 * ends with an explicit exit: Dawn's threads could otherwise keep it alive, and an await that
 * leaves the event loop empty would end it silently, so the exit code starts at 1.
 */
import { describeAdapter, installNodeWebGPU } from './webgpu-node.js';
import { findChromium } from './find-chromium.js';

const NO_ADAPTER = 2;
const TIMEOUT_MS = 60_000;

process.exitCode = 1;
const watchdog = setTimeout(() => {
  console.error(`find-adapter: no answer from Dawn within ${TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, TIMEOUT_MS);

async function main(): Promise<number> {
  const icd = installNodeWebGPU();
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new Error('navigator.gpu is missing after installing Dawn');
  // What tfjs-backend-webgpu asks for by default.
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  const chromium = findChromium();
  const browserNote = chromium.executable
    ? `Chromium for the browser test: ${chromium.executable}`
    : 'no Chromium or Chrome found: test/browser.test.ts will fail (install one, or set CHROMIUM_PATH)';
  if (!adapter) {
    console.log(`find-adapter: no WebGPU adapter found (Dawn, ICD: ${icd})`);
    console.log(`find-adapter: ${browserNote}`);
    return NO_ADAPTER;
  }
  const { description } = describeAdapter(adapter.info, icd);
  const software = /swiftshader|lavapipe|llvmpipe|software|cpu/i.test(
    `${description} ${adapter.info.architecture} ${adapter.info.device}`,
  );
  console.log(
    `find-adapter: WebGPU adapter: ${description}${software ? ' (software)' : ' (hardware)'}`,
  );
  console.log(`find-adapter: ${browserNote}`);
  return 0;
}

main().then(
  (code) => {
    clearTimeout(watchdog);
    process.exit(code);
  },
  (err: unknown) => {
    clearTimeout(watchdog);
    console.error(`find-adapter: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
