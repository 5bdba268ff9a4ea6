// Runs before every test file (vitest `setupFiles`): puts Dawn's navigator.gpu in place so that
// the tfjs WebGPU backend can initialise. Whether an adapter is really there is asserted by
// the tests that use it (test/helpers/backend.ts): in CI a missing adapter is a failure.
import { installNodeWebGPU } from '../../tools/webgpu-node.js';

installNodeWebGPU();
