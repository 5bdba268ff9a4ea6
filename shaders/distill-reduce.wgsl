// distill-reduce.wgsl — the batch reduction of the per-row losses into the op's scalar.
//
// Forward: out = rowWeight · Σ_b ℓ_b   (rowWeight = 1/B for 'mean', 1 for 'sum'), or, for
// 'mean' with an ignore index (params.countRows), Σ_b ℓ_b / max(N, 1) with N the rows whose
// int32 label is not the ignore index, counted here from the labels (ignored rows' ℓ_b are 0).
// Gradient: none of its own; ∂out/∂ℓ_b = the row's weight, which the forward pass applied.
//
// Bindings (group 0):
//   0 rowLosses f32[B] read      1 params Params uniform      2 out f32[1] read_write
//   3 labelIndices i32[B] read (IGNORE_INDEX; a placeholder otherwise)
//
// Thread plan: one workgroup of 256 invocations; invocation i sums rows i, i + 256, …, then a
// shared-memory tree adds the 256 partial sums. The order is fixed, so the result is the same
// on every run. A NaN row loss makes the output NaN, else a +Infinity one +Infinity (selected,
// never added: distill-common.wgsl, lossSpecial).

@group(0) @binding(0) var<storage, read> rowLosses: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> labelIndices: array<i32>;

override IGNORE_INDEX: bool = false;
const WORKGROUP_SIZE: u32 = 256u;
var<workgroup> partial: array<f32, WORKGROUP_SIZE>;
var<workgroup> counts: array<u32, WORKGROUP_SIZE>;
var<workgroup> specials: array<u32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  var n = 0u;
  var special = 0u;
  for (var b = lid; b < params.batch; b += WORKGROUP_SIZE) {
    // NaN / +Infinity losses are not added but selected at the end (lossSpecial)
    let l = rowLosses[b];
    let sp = lossSpecial(l);
    acc += select(l, 0.0, sp != 0u);
    special = special | sp;
    if (IGNORE_INDEX) {
      n += select(1u, 0u, labelIndices[b] == params.ignoreIndex);
    }
  }
  partial[lid] = acc;
  counts[lid] = n;
  specials[lid] = special;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
      counts[lid] += counts[lid + stride];
      specials[lid] = specials[lid] | specials[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    var w = params.rowWeight;
    if (IGNORE_INDEX && params.countRows != 0u) {
      w = 1.0 / f32(max(counts[0], 1u));
    }
    out[0] = withSpecials(partial[0] * w, specials[0]);
  }
}
