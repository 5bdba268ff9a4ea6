/**
 * Every tfjs internal that the fused op relies on, reached from this module only and checked
 * where it is read. tfjs' public API cannot record a multi-output kernel into the WebGPU
 * backend's command stream, see where a tensor's data is stored, or tell whether a tensor is
 * on the gradient tape; these internals of @tensorflow/tfjs-core and
 * @tensorflow/tfjs-backend-webgpu 4.x (tested with 4.22) can. A tfjs version that renames or
 * reshapes one of them makes its accessor throw a `TfjsInternalsError` that names it, never a
 * silent fall-back to a slower path or a wrong result.
 *
 * | internal                                   | read by                                        |
 * | ------------------------------------------ | ---------------------------------------------- |
 * | engine.isTapeOn(), engine.state.activeTape | the op: which gradients the forward writes     |
 * | engine.runKernelFunc(), state.*Depth       | the linear op: a lazy gradient, its own tapes  |
 * | WebGPUBackend.bufferManager                | measuring: the GPU bytes in use, high-water    |
 * | WebGPUBackend command encoder, uniforms…   | dispatch: recording standalone WGSL            |
 * | WebGPUBackend.tensorMap entries            | dispatch (stored dtype, buffer), gradient (dy) |
 * | WebGPUBackend.device.limits                | the op: bindings, chunks, the largest buffer   |
 * | WebGPUBackend.adapterInfo                  | the plan: hardware or software adapter         |
 * | env flag WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE | dispatch: when tfjs would flush its queue      |
 * | WebGPUBackend.activeTimers, querySet…      | dispatch: timing its passes inside tf.time()   |
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DataId, DataType, KernelBackend, TensorInfo } from '@tensorflow/tfjs-core';

/** The tfjs versions whose internals this module is written against. */
export const SUPPORTED_TFJS =
  '@tensorflow/tfjs-core and @tensorflow/tfjs-backend-webgpu 4.x (tested with 4.22)';

/** A tfjs internal is missing or not what this module expects. */
export class TfjsInternalsError extends Error {
  /** The internal, e.g. `engine.state.activeTape`. */
  readonly internal: string;
  constructor(internal: string, problem: string) {
    super(
      `tfjs-fused-distill: tfjs internal ${internal} ${problem}; the fused kernels rely on it ` +
        `and support ${SUPPORTED_TFJS}`,
    );
    this.name = 'TfjsInternalsError';
    this.internal = internal;
  }
}

function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  return typeof x === 'object' ? 'an object of another shape' : typeof x;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null;
}

// ---------------------------------------------------------------------------------------------
// Engine (tfjs-core)

/** What the op reads of a tape node: the ids of the tensors it produced. */
export interface TapeNode {
  readonly outputs: readonly { readonly id: number }[];
}

/**
 * The nodes recorded so far by the engine's gradient tape, or null when no tape is recording
 * (`engine.isTapeOn()` is false). `engine.state.activeTape` is read only while a tape records:
 * before the first tape of a process it does not exist (EngineState does not initialise it) and
 * after a backward pass it is null, both legitimately. While recording it is an array in 4.22
 * (null is taken as an empty tape); its absence then is an error, as is anything else that is
 * not an array, or a node without an `outputs` array.
 */
export function activeTape(engine: unknown = tf.engine()): readonly TapeNode[] | null {
  const e = engine as { isTapeOn?: unknown; state?: unknown };
  if (typeof e.isTapeOn !== 'function') {
    throw new TfjsInternalsError('engine.isTapeOn()', 'is missing');
  }
  if (!(e.isTapeOn as () => boolean).call(engine)) return null;
  if (!isObject(e.state)) throw new TfjsInternalsError('engine.state', 'is missing');
  if (!('activeTape' in e.state)) {
    throw new TfjsInternalsError('engine.state.activeTape', 'is absent while a tape is recording');
  }
  const tape = e.state.activeTape;
  if (tape === null) return []; // a recording tape without nodes yet: nothing to search
  if (!Array.isArray(tape)) {
    throw new TfjsInternalsError(
      'engine.state.activeTape',
      `is ${describeValue(tape)} while a tape is recording (expected an array of tape nodes)`,
    );
  }
  for (const node of tape as unknown[]) {
    if (!isObject(node) || !Array.isArray(node.outputs)) {
      throw new TfjsInternalsError(
        'engine.state.activeTape',
        'holds a node without an `outputs` array (expected tape nodes {outputs: Tensor[]})',
      );
    }
  }
  return tape as TapeNode[];
}

/** The lazy gradients of a {@link runWithGradients} node: one closure per input it names. */
export type LazyGradients = Record<string, () => tf.Tensor>;

/** An op whose forward is any tfjs code and whose backward is one closure per input. */
export interface GradientNode {
  /** The inputs that gradients may flow to (or be refused for), by name. */
  readonly inputs: tf.NamedTensorMap;
  /** Runs inside a tidy with the tape off; what `save` is given reaches `backward`. */
  readonly forward: (save: (tensors: tf.Tensor[]) => void) => tf.Tensor[];
  /** The upstream gradients, one per output (zeros for an output nothing used), and the saved tensors. */
  readonly backward: (dys: tf.Tensor[], saved: tf.Tensor[]) => LazyGradients;
}

/**
 * Runs `node` as one tape node. tf.customGrad computes every input's gradient eagerly; this is
 * the engine's `runKernelFunc` under it, whose gradient map is lazy, so that the closure of an
 * input nothing differentiates never runs, and one that must refuse (a constant teacher) can
 * throw. Returns the forward's outputs.
 */
export function runWithGradients(node: GradientNode, engine: unknown = tf.engine()): tf.Tensor[] {
  const e = engine as { runKernelFunc?: unknown };
  if (typeof e.runKernelFunc !== 'function') {
    throw new TfjsInternalsError('engine.runKernelFunc()', 'is missing');
  }
  const out = (e.runKernelFunc as (params: unknown) => tf.Tensor | tf.Tensor[]).call(engine, {
    forwardFunc: (_backend: unknown, save: (tensors: tf.Tensor[]) => void) => node.forward(save),
    backwardsFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
      node.backward(Array.isArray(dy) ? dy : [dy], saved),
    inputs: node.inputs,
  });
  return Array.isArray(out) ? out : [out];
}

/**
 * Runs `f` (which may call tf.grads) on a tape of its own, whatever the engine is doing: inside
 * a {@link runWithGradients} forward (where the engine's tape is off) or a backward pass
 * (where a nested tf.grads would replace the outer tape and then null it). The engine's
 * `state.activeTape`, `gradientDepth` and `kernelDepth` are set aside and restored.
 */
export function withOwnTape<T>(f: () => T, engine: unknown = tf.engine()): T {
  const state = (engine as { state?: unknown }).state;
  if (!isObject(state)) throw new TfjsInternalsError('engine.state', 'is missing');
  for (const field of ['gradientDepth', 'kernelDepth'] as const) {
    if (typeof state[field] !== 'number') {
      throw new TfjsInternalsError(
        `engine.state.${field}`,
        `is ${describeValue(state[field])} (expected a number)`,
      );
    }
  }
  const before = {
    activeTape: state.activeTape,
    gradientDepth: state.gradientDepth,
    kernelDepth: state.kernelDepth,
  };
  state.activeTape = null;
  state.gradientDepth = 0;
  state.kernelDepth = 0;
  try {
    return f();
  } finally {
    state.activeTape = before.activeTape;
    state.gradientDepth = before.gradientDepth;
    state.kernelDepth = before.kernelDepth;
  }
}

// ---------------------------------------------------------------------------------------------
// WebGPU backend (tfjs-backend-webgpu)

export interface UniformField {
  type: 'int32' | 'uint32' | 'float32';
  data: number[];
}

/** A `tensorMap` entry: where tfjs keeps a tensor's data and in which dtype it stored it. */
export interface StoredTensorData {
  /**
   * The dtype of the data as stored. A widening cast (int32/bool → float32, bool → int32)
   * relabels the tensor and keeps this one, and the same buffer.
   */
  readonly dtype: DataType;
  /** The data on the CPU, before its upload (null or undefined once on the GPU). */
  readonly values: ArrayLike<number> | null | undefined;
  /** A GPUBuffer (or GPUTexture) once on the GPU; absent or null before. */
  readonly resource?: unknown;
}

/** The parts of tfjs' WebGPUBackend (4.x) used to record standalone WGSL kernels. */
export interface WebGPUBackendInternals {
  readonly device: GPUDevice;
  readonly tensorMap: { get(dataId: DataId): unknown };
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  readonly commandQueueOwnedIds: WeakSet<DataId>;
  readonly adapterInfo: unknown;
  makeTensorInfo(shape: number[], dtype: DataType): TensorInfo;
  uploadToGPU(dataId: DataId): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  makeUniforms(uniforms: UniformField[]): GPUBufferBinding;
  disposeData(dataId: DataId, force?: boolean): boolean;
}

const REQUIRED_METHODS = [
  'makeTensorInfo',
  'uploadToGPU',
  'ensureCommandEncoderReady',
  'endComputePassEncoder',
  'submitQueue',
  'makeUniforms',
  'disposeData',
] as const;

const checkedBackends = new WeakSet<object>();

/**
 * The backend typed with the internals used here, after checking that they exist (once per
 * backend object: they are fields and methods that tfjs sets up in the constructor).
 */
export function webgpuInternals(backend: KernelBackend | unknown): WebGPUBackendInternals {
  if (!isObject(backend)) throw new TfjsInternalsError('WebGPUBackend', 'is missing');
  if (!checkedBackends.has(backend)) {
    const b = backend;
    const missing: string[] = REQUIRED_METHODS.filter((m) => typeof b[m] !== 'function').map(
      (m) => `WebGPUBackend.${m}()`,
    );
    const device = b.device;
    if (!isObject(device) || typeof device.createBindGroup !== 'function') {
      missing.push('WebGPUBackend.device');
    }
    if (!isObject(b.tensorMap) || typeof b.tensorMap.get !== 'function') {
      missing.push('WebGPUBackend.tensorMap');
    }
    if (!(b.commandQueueOwnedIds instanceof WeakSet)) {
      missing.push('WebGPUBackend.commandQueueOwnedIds');
    }
    if (!('commandEncoder' in b)) missing.push('WebGPUBackend.commandEncoder');
    if (!('computePassEncoder' in b)) missing.push('WebGPUBackend.computePassEncoder');
    if (typeof b.dispatchCountInPass !== 'number') {
      missing.push('WebGPUBackend.dispatchCountInPass');
    }
    if (missing.length > 0) {
      throw new TfjsInternalsError(
        missing.join(', '),
        missing.length > 1 ? 'are missing' : 'is missing',
      );
    }
    checkedBackends.add(backend);
  }
  return backend as unknown as WebGPUBackendInternals;
}

/**
 * The backend's record of a tensor's data. Reading it moves the data over from another
 * backend if it lives there (tfjs' DataStorage does that on `get`). Throws a plain Error for a
 * tensor whose data is gone (disposed), a TfjsInternalsError for an entry of another shape.
 */
export function storedData(backend: WebGPUBackendInternals, dataId: DataId): StoredTensorData {
  let entry: unknown;
  let failure = '';
  try {
    entry = backend.tensorMap.get(dataId);
  } catch (err) {
    // A dataId that no backend knows makes tfjs' data mover throw.
    failure = ` (${err instanceof Error ? err.message : String(err)})`;
  }
  if (entry === undefined) {
    throw new Error(`tfjs-fused-distill: a tensor has no data in tfjs, was it disposed?${failure}`);
  }
  if (!isObject(entry) || typeof entry.dtype !== 'string') {
    throw new TfjsInternalsError(
      'WebGPUBackend.tensorMap entry .dtype',
      `is ${isObject(entry) ? describeValue(entry.dtype) : describeValue(entry)} (expected the stored dtype)`,
    );
  }
  if (!('values' in entry)) {
    throw new TfjsInternalsError('WebGPUBackend.tensorMap entry .values', 'is absent');
  }
  const values = entry.values;
  if (values != null && typeof (values as ArrayLike<number>).length !== 'number') {
    throw new TfjsInternalsError(
      'WebGPUBackend.tensorMap entry .values',
      `is ${describeValue(values)} (expected a typed array, null or undefined)`,
    );
  }
  return entry as unknown as StoredTensorData;
}

/** A tensor's values when they still live on the CPU side of the WebGPU backend, else null. */
export function cpuValues(
  backend: WebGPUBackendInternals,
  dataId: DataId,
): ArrayLike<number> | null {
  return storedData(backend, dataId).values ?? null;
}

/** What a tensor's GPU resource is, after its upload. */
export type GpuResource =
  | { readonly kind: 'buffer'; readonly buffer: GPUBuffer }
  | { readonly kind: 'texture' }
  | { readonly kind: 'none'; readonly what: string };

/** Uploads a tensor's data to the GPU if it is still on the CPU and says what holds it. */
export function gpuResourceOf(backend: WebGPUBackendInternals, dataId: DataId): GpuResource {
  backend.uploadToGPU(dataId);
  const resource = storedData(backend, dataId).resource;
  if (typeof GPUBuffer !== 'undefined' && resource instanceof GPUBuffer) {
    return { kind: 'buffer', buffer: resource };
  }
  if (
    (typeof GPUTexture !== 'undefined' && resource instanceof GPUTexture) ||
    (typeof GPUExternalTexture !== 'undefined' && resource instanceof GPUExternalTexture)
  ) {
    return { kind: 'texture' };
  }
  return { kind: 'none', what: describeValue(resource) };
}

/** The device limits the op reads (WebGPU names). */
export type DeviceLimitName =
  'maxStorageBufferBindingSize' | 'maxBufferSize' | 'minStorageBufferOffsetAlignment';

/** A limit of the backend's device (`WebGPUBackend.device.limits`), a positive number. */
export function deviceLimit(name: DeviceLimitName, backend: unknown = tf.backend()): number {
  const device = isObject(backend) ? backend.device : undefined;
  if (!isObject(device)) throw new TfjsInternalsError('WebGPUBackend.device', 'is missing');
  const limits = device.limits;
  const value = isObject(limits) ? limits[name] : undefined;
  if (typeof value !== 'number' || !(value > 0)) {
    throw new TfjsInternalsError(
      `WebGPUBackend.device.limits.${name}`,
      `is ${describeValue(value)} (expected a positive number)`,
    );
  }
  return value;
}

/** WebGPU's `maxStorageBufferBindingSize` of the backend's device. */
export function maxStorageBufferBindingSize(backend: unknown = tf.backend()): number {
  return deviceLimit('maxStorageBufferBindingSize', backend);
}

/** The adapter's vendor and architecture strings (either may be absent on some browsers). */
export interface AdapterStrings {
  readonly vendor?: string;
  readonly architecture?: string;
}

/**
 * tfjs' `AdapterInfo` of the backend. tfjs always sets the object; its vendor and architecture
 * are undefined where the browser does not expose them (a hardware adapter is then assumed).
 */
export function adapterInfo(backend: unknown = tf.backend()): AdapterStrings {
  const info = isObject(backend) ? backend.adapterInfo : undefined;
  if (!isObject(info)) {
    throw new TfjsInternalsError(
      'WebGPUBackend.adapterInfo',
      `is ${describeValue(info)} (expected an AdapterInfo object)`,
    );
  }
  for (const key of ['vendor', 'architecture'] as const) {
    if (info[key] !== undefined && typeof info[key] !== 'string') {
      throw new TfjsInternalsError(
        `WebGPUBackend.adapterInfo.${key}`,
        `is ${describeValue(info[key])} (expected a string)`,
      );
    }
  }
  return info as AdapterStrings;
}

/** tfjs' flush threshold: its queue is submitted every this many dispatches. */
export function deferredSubmitBatchSize(): number {
  let value: unknown;
  try {
    value = tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE');
  } catch {
    value = undefined;
  }
  if (typeof value !== 'number' || !(value >= 1)) {
    throw new TfjsInternalsError(
      "env flag 'WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE'",
      `is ${describeValue(value)} (expected a number ≥ 1)`,
    );
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// GPU timing inside tf.time() (tfjs-backend-webgpu)

/** One entry of tfjs' timer list: a program's name and its GPU time in ms, once resolved. */
export interface ProgramTimer {
  readonly name: string;
  readonly query: Promise<number>;
}

/**
 * What tfjs' WebGPUBackend uses to time its own programs while `tf.time(f)` runs `f`
 * (WebGPUBackend.time and recordAndSubmit, 4.22): `time()` sets `activeTimers` to a fresh list
 * for the duration of `f`; each program recorded meanwhile runs in a compute pass of its own
 * with `timestampWrites` into `querySet` (indices 0 and 1, created on first use with
 * `querySetCount` entries); right after the pass, `getQueryTime()` records the query set's
 * resolve and a copy to a staging buffer, submits the queue, and resolves to the pass time in
 * ms (0 without timestamp-query); `{name, query}` goes into `activeTimers`, and `time()` sums
 * those promises into `kernelMs`.
 */
export interface GpuTimingInternals {
  /** tfjs' `supportTimestampQuery`: the device was created with 'timestamp-query'. */
  readonly supportTimestampQuery: boolean;
  /** The list that the innermost running `tf.time()` collects. */
  readonly activeTimers: ProgramTimer[];
  /** tfjs' timestamp query set, created as tfjs creates it if it does not exist yet. */
  querySet(): GPUQuerySet;
  /** tfjs' `getQueryTime()`: resolves the query set, submits the queue; ms of the last pass. */
  getQueryTime(): Promise<number>;
}

interface TimingFields {
  activeTimers?: unknown;
  supportTimestampQuery: boolean;
  querySet: GPUQuerySet | null;
  querySetCount: number;
  device: GPUDevice;
  getQueryTime(): Promise<number>;
}

const checkedTimingBackends = new WeakSet<object>();

function checkTimingInternals(b: Record<string, unknown>): void {
  const missing: string[] = [];
  // `activeTimers` only exists once a tf.time() has run: check that time() still uses it.
  const time = b.time;
  if (
    typeof time !== 'function' ||
    !Function.prototype.toString.call(time).includes('activeTimers')
  ) {
    missing.push('WebGPUBackend.time() collecting WebGPUBackend.activeTimers');
  }
  if (typeof b.getQueryTime !== 'function') missing.push('WebGPUBackend.getQueryTime()');
  if (typeof b.supportTimestampQuery !== 'boolean') {
    missing.push('WebGPUBackend.supportTimestampQuery');
  }
  if (!('querySet' in b)) missing.push('WebGPUBackend.querySet');
  if (typeof b.querySetCount !== 'number' || !(b.querySetCount >= 2)) {
    missing.push('WebGPUBackend.querySetCount');
  }
  if (missing.length > 0) {
    throw new TfjsInternalsError(
      missing.join(', '),
      missing.length > 1 ? 'are missing' : 'is missing',
    );
  }
}

/**
 * tfjs' GPU timing state while a `tf.time()` is running, else null. Checks the timing
 * internals once per backend (whether or not a timer runs), so that a tfjs whose timing
 * works otherwise fails here instead of leaving the fused passes out of `kernelMs` silently.
 */
export function activeGpuTimers(backend: WebGPUBackendInternals): GpuTimingInternals | null {
  const b = backend as unknown as Record<string, unknown>;
  if (!checkedTimingBackends.has(b)) {
    checkTimingInternals(b);
    checkedTimingBackends.add(b);
  }
  const fields = backend as unknown as TimingFields;
  const timers = fields.activeTimers;
  if (timers == null) return null;
  if (!Array.isArray(timers)) {
    throw new TfjsInternalsError(
      'WebGPUBackend.activeTimers',
      `is ${describeValue(timers)} while tf.time() runs (expected an array of timers)`,
    );
  }
  return {
    supportTimestampQuery: fields.supportTimestampQuery,
    activeTimers: timers as ProgramTimer[],
    querySet() {
      fields.querySet ??= fields.device.createQuerySet({
        type: 'timestamp',
        count: fields.querySetCount,
      });
      return fields.querySet;
    },
    getQueryTime: () => fields.getQueryTime(),
  };
}

// ---------------------------------------------------------------------------------------------
// GPU memory (tfjs-backend-webgpu's buffer manager)

/**
 * Releases the buffers of the tensors disposed so far (on WebGPU; elsewhere nothing to do).
 * tfjs-webgpu frees a disposed tensor's buffer at its next queue submit, which comes every few
 * kernels; the linear op submits after each chunk, so that a chunk's buffers are not still held
 * while the next chunk allocates its own.
 */
export function releaseDisposedBuffers(): void {
  if (tf.getBackend() !== 'webgpu') return;
  const backend = webgpuInternals(tf.backend());
  backend.endComputePassEncoder();
  backend.ensureCommandEncoderReady();
  backend.submitQueue();
}

/** The GPU bytes in use while a tracker runs: where it started and its high-water mark. */
export interface GpuBytesTracker {
  /** Bytes in use when tracking started. */
  readonly startBytes: number;
  /** The most bytes in use at any buffer acquisition since then. */
  readonly peakBytes: number;
  /** Stops tracking (restores the buffer manager). */
  stop(): void;
}

/**
 * Tracks the bytes of GPU buffers in use (`bufferManager.numBytesUsed`: every tensor's buffer,
 * uniforms and read-back staging, counted once per buffer, and a disposed tensor's until tfjs
 * releases it at its next submit), sampling at every acquisition. `tf.memory().numBytes` counts
 * bytes per tensor, so a reshape or a clone of one buffer counts twice there.
 */
export function trackGpuBytesInUse(backend: unknown = tf.backend()): GpuBytesTracker {
  const b = backend as { bufferManager?: unknown };
  const manager = b.bufferManager;
  if (!isObject(manager) || typeof manager.acquireBuffer !== 'function') {
    throw new TfjsInternalsError('WebGPUBackend.bufferManager.acquireBuffer()', 'is missing');
  }
  if (typeof manager.numBytesUsed !== 'number') {
    throw new TfjsInternalsError(
      'WebGPUBackend.bufferManager.numBytesUsed',
      `is ${describeValue(manager.numBytesUsed)} (expected a number)`,
    );
  }
  const original = manager.acquireBuffer as (...args: unknown[]) => unknown;
  const used = () => manager.numBytesUsed as number;
  const tracker = { startBytes: used(), peakBytes: used() };
  manager.acquireBuffer = function (this: unknown, ...args: unknown[]) {
    const buffer = original.apply(this, args);
    tracker.peakBytes = Math.max(tracker.peakBytes, used());
    return buffer;
  };
  return {
    get startBytes() {
      return tracker.startBytes;
    },
    get peakBytes() {
      return tracker.peakBytes;
    },
    stop() {
      manager.acquireBuffer = original;
    },
  };
}
