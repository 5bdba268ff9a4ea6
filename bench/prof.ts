import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { distillationLoss } from 'tfjs-fused-distill';
import { initNodeWebGPU } from '/work/main/bench/lib/node-webgpu.js';
import { mulberry32, uniformArray, labelArray } from '/work/main/bench/lib/random.js';
await initNodeWebGPU();
const [B, C] = [256, 32768];
const rng = mulberry32(1);
const s = tf.tensor2d(uniformArray(B*C, 4, rng), [B, C]), t = tf.tensor2d(uniformArray(B*C, 4, rng), [B, C]);
const y = tf.tensor1d(labelArray(B, C, rng), 'int32');
async function time(name: string, f: () => tf.Tensor, n = 10) {
  for (let i = 0; i < 2; i++) { const o = f(); await o.data(); o.dispose(); }
  const t0 = performance.now(); let o: tf.Tensor | null = null;
  for (let i = 0; i < n; i++) { o?.dispose(); o = f(); }
  await o!.data(); o!.dispose();
  console.log(name, ((performance.now() - t0) / n).toFixed(1), 'ms');
}
await time('forward', () => distillationLoss(y, s, t));
await time('fwd+bwd', () => tf.tidy(() => { const r = tf.valueAndGrads((x: tf.Tensor) => distillationLoss(y, x, t) as tf.Scalar)([s]); tf.dispose(r.grads); return r.value; }));
await time('fwd+bwd both', () => tf.tidy(() => { const r = tf.valueAndGrads((x: tf.Tensor, z: tf.Tensor) => distillationLoss(y, x, z) as tf.Scalar)([s, t]); tf.dispose(r.grads); return r.value; }));
const bm = (tf.backend() as any).bufferManager;
console.log('buffers used/free', bm.numUsedBuffers, bm.numFreeBuffers, bm.numBytesUsed, bm.numBytesAllocated);
for (let i = 0; i < 3; i++) { const o = tf.tidy(() => { const r = tf.valueAndGrads((x: tf.Tensor) => distillationLoss(y, x, t) as tf.Scalar)([s]); tf.dispose(r.grads); return r.value; }); await o.data(); o.dispose(); }
console.log('buffers used/free', bm.numUsedBuffers, bm.numFreeBuffers, bm.numBytesUsed, bm.numBytesAllocated);
const dyG = tf.add(tf.scalar(1), tf.scalar(0)); await dyG.data();
await time('fwd+bwd gpu dy', () => tf.tidy(() => { const r = tf.valueAndGrads((x: tf.Tensor) => distillationLoss(y, x, t) as tf.Scalar)([s], dyG as tf.Scalar); tf.dispose(r.grads); return r.value; }));
await time('fwd+bwd again', () => tf.tidy(() => { const r = tf.valueAndGrads((x: tf.Tensor) => distillationLoss(y, x, t) as tf.Scalar)([s]); tf.dispose(r.grads); return r.value; }));
await time('fwd+bwd keepgrad', () => tf.tidy(() => { const r = tf.valueAndGrads((x: tf.Tensor) => distillationLoss(y, x, t) as tf.Scalar)([s]); return r.grads[0]!.sum(); }));
