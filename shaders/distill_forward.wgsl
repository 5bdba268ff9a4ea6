// distill_forward.wgsl — forward pass of the distillation loss: per-row losses (or their
// reduction over the batch) and per-row statistics for the backward kernel.
//
// Forward, per row b (see distill_common.wgsl for the notation):
//   ℓ_b = α · (Σ y · log Z1 − Σ y (s − m_s)) + (1 − α) k · (Σ exp(v)(v − u) / ZT − log ZT + log ZS)
//   output: ℓ_b for 'none'; rowWeight · Σ_b ℓ_b for 'mean' (rowWeight = 1/B) and 'sum'.
// Gradients: not here. distill_backward.wgsl computes them from the statistics saved below,
// so a forward pass that no tape will differentiate writes nothing of size B × C.
//
// Bindings (group 0):
//   0 student  f32[B·C]   read         1 teacher f32[B·C]  read
//   2 labels   u32[B] (int32 indices) or u32[B·C] (float32 dense labels, as bits)   read
//   3 params   Params     uniform
//   4 losses   f32[B] per-row losses, or f32[1] when BATCH_IN_WORKGROUP            read_write
//   5 stats    f32[B·8] row statistics                                            read_write
//
// Thread plan: a workgroup of TILE_ROWS × TILE_COLS = 256 invocations; each group of TILE_COLS
// invocations owns one row and strides over its classes. TILE_COLS = 1 (small C, e.g. MNIST's
// 10) is a thread per row with no barrier inside a row; TILE_COLS = 256 (large C) is a
// workgroup per row with shared-memory tree reductions. Two sweeps over the row: maxima (no
// exponential), then the sums (three exponentials per element, see rowTerm). When
// BATCH_IN_WORKGROUP, one workgroup visits every row and reduces the losses itself: forward
// in one dispatch. Otherwise rows are spread over the grid's y dimension and
// distill_reduce.wgsl sums the per-row losses when a scalar is asked for.

@group(0) @binding(0) var<storage, read> student: array<f32>;
@group(0) @binding(1) var<storage, read> teacher: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

override TILE_COLS: u32 = 256u;
override DENSE_LABELS: bool = false;
override BATCH_IN_WORKGROUP: bool = false;
const WORKGROUP_SIZE: u32 = 256u;

var<workgroup> sharedMax: array<vec2<f32>, WORKGROUP_SIZE>;
var<workgroup> sharedFlags: array<u32, WORKGROUP_SIZE>;
var<workgroup> sharedSums: array<RowSums, WORKGROUP_SIZE>;
var<workgroup> sharedLoss: array<f32, WORKGROUP_SIZE>;

// The running sums of one row (or of one thread's share of a row), all relative to the row
// maxima, which are known before the sums start.
struct RowSums {
  z1: f32,
  zs: f32,
  zt: f32,
  // Σ exp(v_c)(v_c − u_c)
  klNumerator: f32,
  // Σ y_c (s_c − m_s) (dense labels), or s_label − m_s (index labels)
  labelDot: f32,
  // Σ y_c (dense labels), 1 (index labels)
  labelSum: f32,
}

fn addRowSums(a: RowSums, b: RowSums) -> RowSums {
  return RowSums(
    a.z1 + b.z1, a.zs + b.zs, a.zt + b.zt,
    a.klNumerator + b.klNumerator, a.labelDot + b.labelDot, a.labelSum + b.labelSum);
}

// One class's contribution. Three exponentials per element: the fewest the sums allow.
fn rowTerm(s: f32, t: f32, ms: f32, mt: f32, invT: f32) -> RowSums {
  let d = s - ms;
  let u = d * invT;
  let v = (t - mt) * invT;
  let ev = exp(v);
  return RowSums(exp(d), exp(u), ev, ev * (v - u), 0.0, 0.0);
}

// Turns a row's maxima and sums into its loss and its statistics for the backward pass.
fn finishRow(row: u32, ms: f32, mt: f32, sums: RowSums, flags: u32) -> f32 {
  let logZ1 = log(sums.z1);
  let logZS = log(sums.zs);
  let logZT = log(sums.zt);
  let kl = sums.klNumerator / sums.zt - logZT + logZS;
  let ce = sums.labelSum * logZ1 - sums.labelDot;
  var loss = params.alpha * ce + params.klWeight * kl;
  var klOut = kl;
  if ((flags & FLAG_NAN) != 0u) {
    loss = quietNan();
    klOut = quietNan();
  }
  if ((flags & FLAG_BAD_LABEL) != 0u) {
    loss = quietNan();
  }
  let base = row * STATS_STRIDE;
  stats[base + 0u] = ms;
  stats[base + 1u] = mt;
  stats[base + 2u] = logZ1;
  stats[base + 3u] = logZS;
  stats[base + 4u] = logZT;
  stats[base + 5u] = klOut;
  stats[base + 6u] = sums.labelSum;
  stats[base + 7u] = f32(flags);
  return loss;
}

// Index labels contribute one term, read once per row by the row's first invocation.
fn indexLabelTerm(row: u32, ms: f32, sums: RowSums, flags: ptr<function, u32>) -> RowSums {
  let label = labelIndex(labels[row]);
  var out = sums;
  out.labelSum = 1.0;
  // An out-of-range label is never used as an address: it flags the row instead.
  if (label < 0 || u32(label) >= params.classes) {
    *flags = *flags | FLAG_BAD_LABEL;
    out.labelDot = 0.0;
  } else {
    out.labelDot = student[row * params.classes + u32(label)] - ms;
  }
  return out;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tileRows = WORKGROUP_SIZE / TILE_COLS;
  let r = lid / TILE_COLS;
  let col = lid % TILE_COLS;
  let classes = params.classes;
  let invT = params.invTemperature;
  var firstRow = wg.y * tileRows;
  var rowStep = params.gridRows * tileRows;
  if (BATCH_IN_WORKGROUP) {
    firstRow = 0u;
    rowStep = tileRows;
  }
  var lossAcc = 0.0;

  // Every invocation of the workgroup runs the same number of iterations (the bound is
  // uniform), so the barriers below are reached in uniform control flow.
  for (var rowBase = firstRow; rowBase < params.batch; rowBase += rowStep) {
    let row = rowBase + r;
    let rowActive = row < params.batch;
    let base = row * classes;

    // Sweep 1: maxima and NaN flags.
    var ms = -3.402823e38;
    var mt = -3.402823e38;
    var flags = 0u;
    if (rowActive) {
      for (var c = col; c < classes; c += TILE_COLS) {
        let s = student[base + c];
        let t = teacher[base + c];
        ms = max(ms, s);
        mt = max(mt, t);
        if (isNan(s) || isNan(t)) { flags = flags | FLAG_NAN; }
      }
    }
    if (TILE_COLS > 1u) {
      sharedMax[lid] = vec2<f32>(ms, mt);
      sharedFlags[lid] = flags;
      workgroupBarrier();
      for (var stride = TILE_COLS / 2u; stride > 0u; stride = stride / 2u) {
        if (col < stride) {
          sharedMax[lid] = max(sharedMax[lid], sharedMax[lid + stride]);
          sharedFlags[lid] = sharedFlags[lid] | sharedFlags[lid + stride];
        }
        workgroupBarrier();
      }
      ms = sharedMax[r * TILE_COLS].x;
      mt = sharedMax[r * TILE_COLS].y;
      flags = sharedFlags[r * TILE_COLS];
    }

    // Sweep 2: the sums, relative to the maxima.
    var sums = RowSums(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    if (rowActive) {
      for (var c = col; c < classes; c += TILE_COLS) {
        let s = student[base + c];
        sums = addRowSums(sums, rowTerm(s, teacher[base + c], ms, mt, invT));
        if (DENSE_LABELS) {
          let y = labelValue(labels[base + c]);
          if (isNan(y)) { flags = flags | FLAG_NAN; }
          sums.labelDot += y * (s - ms);
          sums.labelSum += y;
        }
      }
    }
    if (TILE_COLS > 1u) {
      sharedSums[lid] = sums;
      sharedFlags[lid] = flags;
      workgroupBarrier();
      for (var stride = TILE_COLS / 2u; stride > 0u; stride = stride / 2u) {
        if (col < stride) {
          sharedSums[lid] = addRowSums(sharedSums[lid], sharedSums[lid + stride]);
          sharedFlags[lid] = sharedFlags[lid] | sharedFlags[lid + stride];
        }
        workgroupBarrier();
      }
      sums = sharedSums[r * TILE_COLS];
      flags = sharedFlags[r * TILE_COLS];
      // The next row's sweep 1 writes sharedFlags, whose row slot was just read above: wait.
      workgroupBarrier();
    }

    if (rowActive && col == 0u) {
      if (!DENSE_LABELS) {
        sums = indexLabelTerm(row, ms, sums, &flags);
      }
      let loss = finishRow(row, ms, mt, sums, flags);
      if (BATCH_IN_WORKGROUP) {
        lossAcc += loss;
      } else {
        losses[row] = loss;
      }
    }
  }

  if (BATCH_IN_WORKGROUP) {
    sharedLoss[lid] = lossAcc;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
      if (lid < stride) {
        sharedLoss[lid] += sharedLoss[lid + stride];
      }
      workgroupBarrier();
    }
    if (lid == 0u) {
      losses[0] = sharedLoss[0] * params.rowWeight;
    }
  }
}
