/**
 * The linear op's passes over its row chunks: the losses alone, or the head's gradients for
 * given upstream gradients; and how the chunks' results are joined into the op's outputs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { isUnitOnCpu, isZeroOnCpu } from '../kernels/gradient.js';
import { releaseDisposedBuffers } from '../tfjs-internals.js';
import { chunkGradient, chunkLosses, type ChunkLosses, type ChunkUpstream } from './chunk-loss.js';
import type { ResolvedLinearConfig } from './config.js';
import { HeadGradients } from './head-gradients.js';
import { sliceRows, type LinearShapes, type RowInputs } from './inputs.js';

/** 1 / max(N, 1) for 'mean' (N: the rows not ignored), 1 otherwise. */
export function reductionScale(
  labels: tf.Tensor,
  cfg: ResolvedLinearConfig,
  rows: number,
): tf.Tensor | number {
  if (cfg.loss.reduction !== 'mean') return 1;
  if (!cfg.loss.hasIgnoreIndex) return 1 / rows;
  return tf.tidy(() =>
    tf.div(1, tf.maximum(tf.sum(tf.cast(tf.notEqual(labels, cfg.loss.ignoreIndex), 'float32')), 1)),
  );
}

export type OutputName = 'loss' | 'hardLoss' | 'softLoss';

export function outputNames(cfg: ResolvedLinearConfig): OutputName[] {
  return cfg.loss.returnComponents ? ['loss', 'hardLoss', 'softLoss'] : ['loss'];
}

/**
 * The sum of a list of tensors, one add at a time: tf.addN binds every input at once, and a
 * long list exceeds the storage bindings a WebGPU shader may have.
 */
export function sumOf(parts: tf.Tensor[]): tf.Tensor {
  return parts.reduce((total, part) => tf.add(total, part));
}

/** The op's outputs from every chunk's: summed and scaled, or per row in the leading shape. */
export function joinOutputs(
  parts: ChunkLosses[],
  cfg: ResolvedLinearConfig,
  shapes: LinearShapes,
  scale: tf.Tensor | number,
): tf.Tensor[] {
  return outputNames(cfg).map((name) => {
    const pieces = parts.map((p) => p[name]!);
    if (cfg.loss.reduction === 'none') {
      return tf.reshape(pieces.length === 1 ? pieces[0]! : tf.concat(pieces, 0), [
        ...shapes.leadingShape,
      ]);
    }
    const total = sumOf(pieces);
    return scale === 1 ? total : tf.mul(total, scale);
  });
}

/** Every chunk's losses, without gradients ('sum' or 'none' per chunk). */
export function forwardOnly(
  rows: RowInputs,
  cfg: ResolvedLinearConfig,
  shapes: LinearShapes,
  rowsPerChunk: number,
): tf.Tensor[] {
  const reduction = cfg.loss.reduction === 'none' ? 'none' : 'sum';
  const parts: ChunkLosses[] = [];
  for (let start = 0; start < shapes.rows; start += rowsPerChunk) {
    const count = Math.min(rowsPerChunk, shapes.rows - start);
    parts.push(
      tf.tidy(
        () =>
          chunkLosses(
            sliceRows(rows, start, count),
            rows.weight,
            rows.bias,
            cfg,
            reduction,
          ) as unknown as tf.TensorContainer,
      ) as unknown as ChunkLosses,
    );
    releaseDisposedBuffers();
  }
  return joinOutputs(parts, cfg, shapes, reductionScale(rows.labels, cfg, shapes.rows));
}

/**
 * Every chunk's ∂/∂z folded into the head's gradients; `upstreams` gives, for a chunk's first
 * row and row count, the outputs to differentiate and their upstream gradients.
 */
export function headGradients(
  rows: RowInputs,
  cfg: ResolvedLinearConfig,
  shapes: LinearShapes,
  rowsPerChunk: number,
  hiddenShape: readonly number[],
  scale: tf.Tensor | number,
  upstreams: (start: number, count: number) => ChunkUpstream[],
  values?: tf.Tensor[],
): tf.Tensor[] {
  const reduction = cfg.loss.reduction === 'none' ? 'none' : 'sum';
  const sums = new HeadGradients(rows.weight, rows.bias !== undefined);
  for (let start = 0; start < shapes.rows; start += rowsPerChunk) {
    const count = Math.min(rowsPerChunk, shapes.rows - start);
    // The chunk's temporaries go with its tidy; the running sums must outlive it.
    const { hidden, dz, value } = tf.tidy(() => {
      const chunk = sliceRows(rows, start, count);
      const grad = chunkGradient(
        chunk,
        rows.weight,
        rows.bias,
        cfg,
        reduction,
        upstreams(start, count),
      );
      return { hidden: chunk.hidden, dz: grad.dz, value: grad.value };
    });
    sums.add(hidden, dz);
    tf.dispose([hidden, dz]);
    if (values) values.push(value);
    else value.dispose();
    releaseDisposedBuffers();
  }
  return sums.finish(hiddenShape, scale);
}

/** The upstream gradient's rows [start, start + count) ('none'), or the scalar itself. */
export function upstreamRows(dy: tf.Tensor, start: number, count: number): tf.Tensor {
  return dy.rank === 0 ? dy : tf.slice(tf.reshape(dy, [-1]), [start], [count]);
}

export function isUnit(dy: tf.Tensor): boolean {
  return tf.getBackend() === 'webgpu' ? isUnitOnCpu(dy) : false;
}

export function isZero(dy: tf.Tensor): boolean {
  if (tf.getBackend() !== 'webgpu') return false;
  return isZeroOnCpu(dy);
}
