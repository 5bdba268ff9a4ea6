// distill_reduce.wgsl — the batch reduction of the per-row losses into the op's scalar.
//
// Forward: out = rowWeight · Σ_b ℓ_b   (rowWeight = 1/B for 'mean', 1 for 'sum').
// Gradient: none of its own; ∂out/∂ℓ_b = rowWeight, which distill_backward.wgsl applies.
//
// Bindings (group 0):
//   0 rowLosses f32[B] read      1 params Params uniform      2 out f32[1] read_write
//
// Thread plan: one workgroup of 256 invocations; invocation i sums rows i, i + 256, …, then a
// shared-memory tree adds the 256 partial sums. The order is fixed, so the result is the same
// on every run. A NaN row loss reaches the output.

@group(0) @binding(0) var<storage, read> rowLosses: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WORKGROUP_SIZE: u32 = 256u;
var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var b = lid; b < params.batch; b += WORKGROUP_SIZE) {
    acc += rowLosses[b];
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    out[0] = partial[0] * params.rowWeight;
  }
}
