// distill-components.wgsl — the components of the loss (returnComponents), from the row
// statistics that distill-forward.wgsl wrote in the same forward pass: one dispatch writes both.
//
// Forward, per row b (distill-common.wgsl, row statistics; src/reference.ts):
//   hard_b = CE_b                (StoredRowStats.ce: 0 if ignored, NaN / +Infinity already
//                                 selected)
//   soft_b = k · D_b             (StoredRowStats.kl, the divergence: KL_b for forward KL;
//                                 NaN / +Infinity kept as they are, k > 0)
//   output: hard_b and soft_b per row ('none'), or each reduced like the loss: rowWeight · Σ_b
//   ('mean': 1/B; 'sum': 1), or Σ_b / max(N, 1) for 'mean' with an ignore index (N counted here
//   from the labels, as distill-reduce.wgsl does). NaN wins over +Infinity in a sum.
// Gradient: none of its own; ∂hardLoss and ∂softLoss are the backward kernel at α = 1 and α = 0
// (src/kernels/gradient.ts).
//
// Bindings (group 0):
//   0 stats f32[B·12] read      1 params Params uniform
//   2 hardOut f32[B] or f32[1] read_write      3 softOut f32[B] or f32[1] read_write
//   4 labelIndices i32[B] read (IGNORE_INDEX; a placeholder otherwise)
//
// Thread plan: 'none' (REDUCE false): a grid-stride loop over the rows, one row per invocation
// per pass. Reduced: one workgroup of 256 invocations, each summing rows i, i + 256, …, then a
// shared-memory tree (fixed order: the same result on every run).

@group(0) @binding(0) var<storage, read> stats: array<StoredRowStats>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> hardOut: array<f32>;
@group(0) @binding(3) var<storage, read_write> softOut: array<f32>;
@group(0) @binding(4) var<storage, read> labelIndices: array<i32>;

override IGNORE_INDEX: bool = false;
override REDUCE: bool = false;
const WORKGROUP_SIZE: u32 = 256u;
var<workgroup> hardPartial: array<f32, WORKGROUP_SIZE>;
var<workgroup> softPartial: array<f32, WORKGROUP_SIZE>;
var<workgroup> counts: array<u32, WORKGROUP_SIZE>;
var<workgroup> hardSpecials: array<u32, WORKGROUP_SIZE>;
var<workgroup> softSpecials: array<u32, WORKGROUP_SIZE>;

fn hardOf(b: u32) -> f32 {
  return stats[b].ce;
}

// k · KL_b, with NaN and +Infinity selected through (never multiplied).
fn softOf(b: u32) -> f32 {
  let d = stats[b].kl;
  return select(params.klFactor * d, d, lossSpecial(d) != 0u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  if (!REDUCE) {
    let stride = groups.x * WORKGROUP_SIZE;
    for (var b = gid.x; b < params.batch; b += stride) {
      hardOut[b] = hardOf(b);
      softOut[b] = softOf(b);
    }
    return;
  }
  var hardAcc = 0.0;
  var softAcc = 0.0;
  var hardSp = 0u;
  var softSp = 0u;
  var n = 0u;
  for (var b = lid; b < params.batch; b += WORKGROUP_SIZE) {
    let h = hardOf(b);
    let s = softOf(b);
    let hs = lossSpecial(h);
    let ss = lossSpecial(s);
    hardAcc += select(h, 0.0, hs != 0u);
    softAcc += select(s, 0.0, ss != 0u);
    hardSp = hardSp | hs;
    softSp = softSp | ss;
    if (IGNORE_INDEX) {
      n += select(1u, 0u, labelIndices[b] == params.ignoreIndex);
    }
  }
  hardPartial[lid] = hardAcc;
  softPartial[lid] = softAcc;
  hardSpecials[lid] = hardSp;
  softSpecials[lid] = softSp;
  counts[lid] = n;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      hardPartial[lid] += hardPartial[lid + stride];
      softPartial[lid] += softPartial[lid + stride];
      hardSpecials[lid] = hardSpecials[lid] | hardSpecials[lid + stride];
      softSpecials[lid] = softSpecials[lid] | softSpecials[lid + stride];
      counts[lid] += counts[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    var w = params.rowWeight;
    if (IGNORE_INDEX && params.countRows != 0u) {
      w = 1.0 / f32(max(counts[0], 1u));
    }
    hardOut[0] = withSpecials(hardPartial[0] * w, hardSpecials[0]);
    softOut[0] = withSpecials(softPartial[0] * w, softSpecials[0]);
  }
}
