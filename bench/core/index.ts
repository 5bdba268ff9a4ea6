/**
 * The host-neutral benchmark code: the distillation protocol, its presets and models, the
 * timing and the report. Runs wherever tfjs and WebGPU do (Node with Dawn, a page); no Node
 * APIs (tsconfig.core.json checks that, test/core-bundle.test.ts bundles it for the browser).
 * Hosts: bench/node/ (the CLIs, the headless runner) and bench/page/ (the app). The numerics
 * suite (./numerics/) and the dataset catalogue (./data/) have their own entry points.
 */
export * from './protocol.js';
export * from './presets.js';
export * from './models.js';
export * from './distiller.js';
export * from './results-table.js';
export * from './kernel-bench.js';
export * from './lib/csv.js';
export * from './lib/dispatch-counter.js';
export * from './lib/loss-timing.js';
export * from './lib/memory-ceiling.js';
export * from './lib/random.js';
export * from './lib/stats.js';
