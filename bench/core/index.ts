/**
 * The host-neutral benchmark code: the distillation protocol, its presets and models, the
 * timing and the report. Runs wherever tfjs and WebGPU do (Node with Dawn, a page); no Node
 * APIs (tsconfig.core.json checks that, test/core-bundle.test.ts bundles it for the browser).
 * Hosts: bench/node/ (the CLIs, the headless runner) and bench/page/ (the app). The dataset
 * catalogue (./data/) has its own entry point; the numerics suite is the package's
 * `tfjs-fused-distill/validation`.
 */
export * from './protocol.js';
export * from './presets.js';
export * from './models.js';
export * from './hard-label-training.js';
export * from './results-table/index.js';
export * from './kernel-bench/index.js';
export * from './lib/csv.js';
export * from './lib/dispatch-counter.js';
export * from './lib/loss-timing.js';
export * from './lib/memory-ceiling.js';
export * from './lib/stats.js';
