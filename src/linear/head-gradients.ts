/**
 * The student head's gradients, summed over chunks: ∂L/∂h = dz · Wᵀ row by row, ∂L/∂W = Σ_c h_cᵀ
 * dz_c and ∂L/∂b = Σ_c Σ_rows dz_c, in float32. The weight's running sum goes through the bias
 * slot of a fused matMul, so that only the previous partial sum and the new one coexist (never a
 * third `[H, V]` tensor for the chunk's own product).
 */
import * as tf from '@tensorflow/tfjs-core';

export class HeadGradients {
  private readonly hiddenParts: tf.Tensor2D[] = [];
  private weightSum: tf.Tensor2D | null = null;
  private biasSum: tf.Tensor1D | null = null;

  constructor(
    private readonly weight: tf.Tensor2D,
    private readonly withBias: boolean,
  ) {}

  /** Adds a chunk: its hidden states `[c, H]` and ∂/∂z `[c, V]` (the caller disposes dz). */
  add(hidden: tf.Tensor2D, dz: tf.Tensor2D): void {
    this.hiddenParts.push(tf.matMul(dz, this.weight, false, true));
    const previous = this.weightSum;
    this.weightSum =
      previous === null
        ? tf.matMul<tf.Tensor2D>(hidden, dz, true, false)
        : (tf.fused.matMul({ a: hidden, b: dz, transposeA: true, bias: previous }) as tf.Tensor2D);
    previous?.dispose();
    if (this.withBias) {
      const previousBias = this.biasSum;
      const chunkBias = tf.sum(dz, 0) as tf.Tensor1D;
      this.biasSum =
        previousBias === null ? chunkBias : tf.add<tf.Tensor1D>(previousBias, chunkBias);
      if (previousBias !== null) {
        previousBias.dispose();
        chunkBias.dispose();
      }
    }
  }

  /**
   * [∂L/∂hidden in `hiddenShape`, ∂L/∂W, ∂L/∂b when there is a bias], each times `scale`; the
   * partial sums are disposed.
   */
  finish(hiddenShape: readonly number[], scale: tf.Tensor | number): tf.Tensor[] {
    if (this.weightSum === null) throw new Error('fusedLinearDistillationLoss: no chunk was added');
    const scaled = (x: tf.Tensor): tf.Tensor => {
      if (scale === 1) return x;
      const y = tf.mul(x, scale);
      x.dispose();
      return y;
    };
    const joined =
      this.hiddenParts.length === 1 ? this.hiddenParts[0]! : tf.concat(this.hiddenParts, 0);
    if (this.hiddenParts.length > 1) this.hiddenParts.forEach((t) => t.dispose());
    const hidden = tf.reshape(joined, [...hiddenShape]);
    if (hidden !== joined) joined.dispose();
    const out = [scaled(hidden), scaled(this.weightSum)];
    if (this.biasSum !== null) out.push(scaled(this.biasSum));
    return out;
  }
}
