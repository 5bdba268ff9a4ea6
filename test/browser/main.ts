/**
 * The browser side of test/browser.test.ts: imports the package as an app would (bundled by
 * Vite), runs the fused loss forward and backward on the page's WebGPU adapter, and leaves the
 * result, with the float64 reference's, in `window.__fusedDistillResult` for the test to read.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';
import { distillationLoss } from 'tfjs-fused-distill';
import { referenceDistillationLoss } from 'tfjs-fused-distill/validation';

export interface BrowserResult {
  backend: string;
  adapter: string;
  value: number;
  reference: number;
  maxGradError: number;
  maxGradMagnitude: number;
  error?: string;
}

async function run(): Promise<BrowserResult> {
  if (!(await tf.setBackend('webgpu'))) throw new Error('webgpu backend unavailable');
  const adapter = await navigator.gpu.requestAdapter();
  const B = 8;
  const C = 10;
  const s = Float32Array.from({ length: B * C }, (_, i) => 3 * Math.sin(i * 1.3));
  const t = Float32Array.from({ length: B * C }, (_, i) => 3 * Math.cos(i * 0.7));
  const y = Int32Array.from({ length: B }, (_, i) => (i * 3) % C);
  const yT = tf.tensor1d(y, 'int32');
  const tT = tf.tensor2d(t, [B, C]);
  const sT = tf.tensor2d(s, [B, C]);
  const { value, grads } = tf.valueAndGrads((x: tf.Tensor) => distillationLoss(yT, x, tT))([sT]);
  const v = (await value.data())[0]!;
  const g = await grads[0]!.data();
  const ref = referenceDistillationLoss({
    batch: B,
    classes: C,
    student: s,
    teacher: t,
    labels: y,
    labelKind: 'index',
  });
  let maxGradError = 0;
  let maxGradMagnitude = 0;
  g.forEach((x, i) => {
    maxGradError = Math.max(maxGradError, Math.abs(x - ref.gradStudent[i]!));
    maxGradMagnitude = Math.max(maxGradMagnitude, Math.abs(ref.gradStudent[i]!));
  });
  tf.dispose([yT, tT, sT, value, ...grads]);
  return {
    backend: tf.getBackend(),
    adapter: `${adapter?.info.vendor ?? ''} ${adapter?.info.architecture ?? ''}`.trim(),
    value: v,
    reference: ref.value[0]!,
    maxGradError,
    maxGradMagnitude,
  };
}

const target = window as unknown as { __fusedDistillResult?: BrowserResult };
run().then(
  (r) => (target.__fusedDistillResult = r),
  (e: unknown) =>
    (target.__fusedDistillResult = {
      backend: '',
      adapter: '',
      value: NaN,
      reference: NaN,
      maxGradError: NaN,
      maxGradMagnitude: NaN,
      error: String(e instanceof Error ? e.stack : e),
    }),
);
