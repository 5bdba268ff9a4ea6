/**
 * Counts WebGPU compute dispatches by wrapping `GPUComputePassEncoder.prototype.dispatchWorkgroups`
 * (installed once per process). tfjs' reshapes, identities and widening casts do not dispatch,
 * so this is the number of GPU programs a step really runs.
 */
let count = 0;
let installed = false;

export function installDispatchCounter(): void {
  if (installed) return;
  const proto = (globalThis as { GPUComputePassEncoder?: { prototype: GPUComputePassEncoder } })
    .GPUComputePassEncoder?.prototype;
  if (!proto)
    throw new Error('GPUComputePassEncoder is not defined: no WebGPU implementation loaded');
  const original = proto.dispatchWorkgroups;
  proto.dispatchWorkgroups = function (this: GPUComputePassEncoder, ...args) {
    count++;
    return original.apply(this, args);
  };
  installed = true;
}

/** Runs `fn` and returns how many dispatches it recorded. */
export function countDispatches(fn: () => void): number {
  installDispatchCounter();
  const before = count;
  fn();
  return count - before;
}

export function dispatchCount(): number {
  return count;
}
