import * as tf from '@tensorflow/tfjs-core';
import { test } from 'vitest';
import { useWebGPU } from './helpers/backend.js';
import { distillationLoss, referenceDistillationLoss } from '../src/index.js';

function rand(n: number, scale: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

test('scratch', async () => {
  await useWebGPU();
  for (const [B, C] of [[7, 10], [64, 10], [3, 1000], [300, 1271], [2, 32768]] as const) {
    for (const reduction of ['mean', 'none'] as const) {
      const s = rand(B * C, 5, 1), t = rand(B * C, 5, 2);
      const lab = Int32Array.from({ length: B }, (_, i) => (i * 7) % C);
      const cfg = { reduction, alpha: 0.3, temperature: 4 };
      const ref = referenceDistillationLoss({ batch: B, classes: C, student: s, teacher: t, labels: lab, labelKind: 'index' }, cfg);
      const sT = tf.tensor2d(s, [B, C]), tT = tf.tensor2d(t, [B, C]), yT = tf.tensor1d(lab, 'int32');
      const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => distillationLoss(yT, a, b, cfg) as tf.Scalar)([sT, tT]);
      const v = await value.data(); const gs = await grads[0]!.data(); const gt = await grads[1]!.data();
      let e1 = 0, e2 = 0, e3 = 0;
      for (let i = 0; i < v.length; i++) e1 = Math.max(e1, Math.abs(v[i]! - ref.value[i]!));
      for (let i = 0; i < gs.length; i++) { e2 = Math.max(e2, Math.abs(gs[i]! - ref.gradStudent[i]!)); e3 = Math.max(e3, Math.abs(gt[i]! - ref.gradTeacher[i]!)); }
      console.log(B, C, reduction, 'val', v[0], ref.value[0], 'err', e1, e2, e3);
      tf.dispose([sT, tT, yT, value, ...grads]);
    }
  }
});
