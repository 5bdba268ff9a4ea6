/**
 * The tfjs internals the kernels rely on (src/tfjs-internals.ts): each accessor works against
 * the installed tfjs (4.22), and throws a TfjsInternalsError naming the internal when an engine
 * or backend object lacks it, instead of falling back silently.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
// tf.grad below differentiates stock ops.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { describe, expect, test } from 'vitest';
import {
  activeGpuTimers,
  activeTape,
  adapterInfo,
  cpuValues,
  deferredSubmitBatchSize,
  deviceLimit,
  gpuResourceOf,
  maxStorageBufferBindingSize,
  storedData,
  TfjsInternalsError,
  webgpuInternals,
  type TapeNode,
} from '../src/tfjs-internals.js';
import { useCheckedWebGPU } from './helpers/backend.js';

useCheckedWebGPU();

/** The real backend with one own property shadowing an internal (undefined: "missing"). */
function backendWith(overrides: Record<string, unknown>): object {
  const real = tf.backend() as object;
  return Object.create(
    real,
    Object.fromEntries(Object.entries(overrides).map(([k, value]) => [k, { value }])),
  ) as object;
}

function expectInternalsError(fn: () => unknown, internal: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(TfjsInternalsError);
  const message = (caught as Error).message;
  expect(message).toMatch(internal);
  expect(message).toMatch(/4\.x \(tested with 4\.22\)/);
}

test('the installed tfjs is 4.x', () => {
  expect(tf.version_core).toMatch(/^4\./);
  const webgpu = createRequire(import.meta.url)('@tensorflow/tfjs-backend-webgpu/package.json') as {
    version: string;
  };
  expect(webgpu.version).toMatch(/^4\./);
});

describe('engine.isTapeOn() / engine.state.activeTape', () => {
  test('null without a tape; the recorded nodes while a tape records', () => {
    expect(activeTape()).toBeNull();
    let seen: readonly TapeNode[] | null = null;
    let producedId = -1;
    const x = tf.tensor1d([1, 2, 3]);
    const g = tf.grad((v: tf.Tensor) => {
      const y = tf.square(v);
      producedId = y.id;
      seen = activeTape();
      return tf.sum(y);
    })(x);
    expect(Array.isArray(seen)).toBe(true);
    expect(seen!.some((n) => n.outputs.some((o) => o.id === producedId))).toBe(true);
    expect(activeTape()).toBeNull(); // after the backward pass
    tf.dispose([x, g]);
  });

  test('absent or null activeTape is fine while no tape records', () => {
    expect(activeTape({ isTapeOn: () => false, state: {} })).toBeNull();
    expect(activeTape({ isTapeOn: () => false, state: { activeTape: null } })).toBeNull();
    expect(activeTape({ isTapeOn: () => true, state: { activeTape: null } })).toEqual([]);
  });

  test('a missing internal throws a named error', () => {
    expectInternalsError(() => activeTape({ state: { activeTape: [] } }), /engine\.isTapeOn\(\)/);
    expectInternalsError(() => activeTape({ isTapeOn: () => true }), /engine\.state is missing/);
    expectInternalsError(
      () => activeTape({ isTapeOn: () => true, state: {} }),
      /engine\.state\.activeTape is absent while a tape is recording/,
    );
    expectInternalsError(
      () => activeTape({ isTapeOn: () => true, state: { activeTape: {} } }),
      /engine\.state\.activeTape is an object/,
    );
    expectInternalsError(
      () => activeTape({ isTapeOn: () => true, state: { activeTape: [{ output: [] }] } }),
      /engine\.state\.activeTape holds a node without an `outputs` array/,
    );
  });
});

describe('WebGPUBackend internals', () => {
  test('webgpuInternals: the real backend passes; each missing member is named', () => {
    const b = webgpuInternals(tf.backend());
    expect(b.device).toBeDefined();
    const named: Record<string, string> = {
      tensorMap: 'WebGPUBackend.tensorMap',
      device: 'WebGPUBackend.device',
      commandQueueOwnedIds: 'WebGPUBackend.commandQueueOwnedIds',
      dispatchCountInPass: 'WebGPUBackend.dispatchCountInPass',
      makeUniforms: 'WebGPUBackend.makeUniforms()',
      uploadToGPU: 'WebGPUBackend.uploadToGPU()',
      submitQueue: 'WebGPUBackend.submitQueue()',
    };
    for (const [member, label] of Object.entries(named)) {
      const pattern = new RegExp(`${label.replace(/[.()]/g, '\\$&')} is missing`);
      expectInternalsError(() => webgpuInternals(backendWith({ [member]: undefined })), pattern);
    }
    expectInternalsError(() => webgpuInternals(undefined), /WebGPUBackend is missing/);
  });

  test('storedData / cpuValues / gpuResourceOf: stored dtype, CPU values, then a GPUBuffer', () => {
    const b = webgpuInternals(tf.backend());
    const i = tf.tensor1d([1, 0, 2], 'int32');
    const f = tf.cast(i, 'float32'); // a widening cast: relabelled, the data stays int32
    expect(f.dtype).toBe('float32');
    expect(storedData(b, f.dataId).dtype).toBe('int32');
    expect(Array.from(cpuValues(b, f.dataId)!)).toEqual([1, 0, 2]);
    const resource = gpuResourceOf(b, f.dataId);
    expect(resource.kind).toBe('buffer');
    expect(cpuValues(b, f.dataId)).toBeNull();
    tf.dispose([i, f]);
    expect(() => storedData(b, f.dataId)).toThrow(/no data in tfjs, was it disposed/);
  });

  test('storedData: a tensorMap entry of another shape throws a named error', () => {
    const t = tf.tensor1d([1]);
    const fake = (entry: unknown) =>
      webgpuInternals(backendWith({ tensorMap: { get: () => entry } }));
    expectInternalsError(
      () => storedData(fake({ values: null }), t.dataId),
      /WebGPUBackend\.tensorMap entry \.dtype/,
    );
    expectInternalsError(
      () => storedData(fake({ dtype: 'float32' }), t.dataId),
      /WebGPUBackend\.tensorMap entry \.values is absent/,
    );
    expectInternalsError(
      () => cpuValues(fake({ dtype: 'float32', values: 3 }), t.dataId),
      /WebGPUBackend\.tensorMap entry \.values is number/,
    );
    t.dispose();
  });

  test('maxStorageBufferBindingSize', () => {
    expect(maxStorageBufferBindingSize()).toBe(
      (tf.backend() as unknown as { device: GPUDevice }).device.limits.maxStorageBufferBindingSize,
    );
    expect(maxStorageBufferBindingSize()).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expectInternalsError(() => maxStorageBufferBindingSize({}), /WebGPUBackend\.device is missing/);
    expectInternalsError(
      () => maxStorageBufferBindingSize({ device: { limits: {} } }),
      /WebGPUBackend\.device\.limits\.maxStorageBufferBindingSize is undefined/,
    );
  });

  test('deviceLimit: the binding and buffer limits and the offset alignment', () => {
    const limits = (tf.backend() as unknown as { device: GPUDevice }).device.limits;
    for (const name of [
      'maxStorageBufferBindingSize',
      'maxBufferSize',
      'minStorageBufferOffsetAlignment',
    ] as const) {
      expect(deviceLimit(name)).toBe(limits[name]);
      expectInternalsError(
        () => deviceLimit(name, { device: { limits: { [name]: 'x' } } }),
        new RegExp(`WebGPUBackend\\.device\\.limits\\.${name} is string`),
      );
    }
    // WebGPU guarantees an alignment of at most 256 bytes and a buffer at least as large as
    // its largest binding.
    expect(deviceLimit('minStorageBufferOffsetAlignment')).toBeLessThanOrEqual(256);
    expect(deviceLimit('maxBufferSize')).toBeGreaterThanOrEqual(256 * 2 ** 20);
    expectInternalsError(
      () => deviceLimit('maxBufferSize', {}),
      /WebGPUBackend\.device is missing/,
    );
  });

  test('adapterInfo', () => {
    const info = adapterInfo();
    expect(typeof info.vendor).toBe('string');
    expect(typeof info.architecture).toBe('string');
    expect(adapterInfo({ adapterInfo: {} })).toEqual({}); // browsers that expose nothing
    expectInternalsError(() => adapterInfo({}), /WebGPUBackend\.adapterInfo is undefined/);
    expectInternalsError(
      () => adapterInfo({ adapterInfo: { vendor: 3 } }),
      /WebGPUBackend\.adapterInfo\.vendor is number/,
    );
  });

  test("env flag 'WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE'", () => {
    expect(deferredSubmitBatchSize()).toBe(
      tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number,
    );
    expect(deferredSubmitBatchSize()).toBeGreaterThanOrEqual(1);
  });
});

describe('GPU timing inside tf.time(): WebGPUBackend.activeTimers, querySet, getQueryTime()', () => {
  test("null outside tf.time(); tfjs' timer list inside, fed by the fused kernels too", async () => {
    const b = webgpuInternals(tf.backend());
    expect(activeGpuTimers(b)).toBeNull();
    let inside: ReturnType<typeof activeGpuTimers> = null;
    const x = tf.tensor1d([1, 2, 3]);
    const info = await tf.time(() => {
      inside = activeGpuTimers(b);
      tf.square(x).dispose();
    });
    const timers = inside as ReturnType<typeof activeGpuTimers>;
    expect(timers).not.toBeNull();
    expect(Array.isArray(timers!.activeTimers)).toBe(true);
    // The square program's entry was pushed into this very list.
    expect(timers!.activeTimers.map((t) => t.name)).toContain('UnaryOpProgram');
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    expect(timers!.supportTimestampQuery).toBe(device.features.has('timestamp-query'));
    if (timers!.supportTimestampQuery) expect(timers!.querySet()).toBeInstanceOf(GPUQuerySet);
    expect(typeof info.kernelMs).toBe('number');
    expect(activeGpuTimers(b)).toBeNull();
    x.dispose();
  });

  test('a missing or changed internal throws a named error', () => {
    const internals = (overrides: Record<string, unknown>) =>
      activeGpuTimers(webgpuInternals(backendWith(overrides)));
    expectInternalsError(
      () => internals({ getQueryTime: undefined }),
      /WebGPUBackend\.getQueryTime\(\) is missing/,
    );
    expectInternalsError(
      () => internals({ supportTimestampQuery: undefined }),
      /WebGPUBackend\.supportTimestampQuery is missing/,
    );
    expectInternalsError(
      () => internals({ querySetCount: undefined }),
      /WebGPUBackend\.querySetCount is missing/,
    );
    // A time() that no longer collects `activeTimers` (renamed): the fused passes would drop
    // out of kernelMs silently.
    expectInternalsError(
      () => internals({ time: async () => ({ kernelMs: 0 }) }),
      /WebGPUBackend\.time\(\) collecting WebGPUBackend\.activeTimers is missing/,
    );
    expectInternalsError(
      () => internals({ activeTimers: {} }),
      /WebGPUBackend\.activeTimers is an object/,
    );
  });
});
