// distill_forward.wgsl — forward pass of the distillation loss: per-row losses (or their
// reduction over the batch), per-row statistics and, when a tape records the op, the
// gradients at unit upstream gradient (as Liger-Kernel does: the backward pass then only
// scales them by dy, or hands them over untouched when dy is the implicit 1 of a loss).
//
// Forward, per row b (notation of distill_common.wgsl):
//   ℓ_b = α · (Σ y · log Z1 − Σ y d) + (1 − α) k · KL_b,  KL_b = E_p[g(x)] − h(y)
//   (the cancellation-free form of distill_common.wgsl, from a second sweep over the row)
//   output: ℓ_b for 'none'; rowWeight · Σ_b ℓ_b for 'mean' (rowWeight = 1/B) and 'sum'.
// Gradients (WRITE_STUDENT_GRAD / WRITE_TEACHER_GRAD), written as rowWeight · ∂ℓ_b/∂·:
//   ∂ℓ_b/∂s_c = α (σ_c Σ y − y_c) + (1 − α) (k / T) (q_c − p_c)
//   ∂ℓ_b/∂t_c = (1 − α) (k / T) · p_c (x_c − E_p[x])   (see distill_common.wgsl)
//
// Bindings (group 0):
//   0 student  Chunk[B·C/CHUNK] read          1 teacher Chunk[B·C/CHUNK] read
//   2 labelIndices i32[B] read (index labels; a placeholder otherwise)
//   3 denseLabels  Chunk[B·C/CHUNK] read (float labels; a placeholder otherwise)
//   4 params   Params uniform
//   5 losses   f32[B] per-row losses, or f32[1] when BATCH_IN_WORKGROUP        read_write
//   6 stats    f32[B·10] row statistics                                        read_write
//   7 gradStudent Chunk[B·C/CHUNK], 8 gradTeacher Chunk[B·C/CHUNK]          read_write
//     (each a 16-byte placeholder, never touched, when its gradient is not written)
//
// Thread plan: a workgroup of TILE_ROWS × TILE_COLS = 256 invocations; each group of TILE_COLS
// invocations owns one row and strides over its chunks (vec4s when C % 4 == 0). TILE_COLS = 1
// (small C, e.g. MNIST's 10) is a thread per row with no barrier inside a row; TILE_COLS = 256
// (large C) is a workgroup per row whose invocations merge their partial states in a
// shared-memory tree. Sweep 1 over the row: the maxima are running maxima and the sums are
// rescaled when a maximum grows (online softmax). Exponentials: three per element (exp d,
// exp u, exp v), plus three per new running maximum. Sweep 2 (the row is still in cache)
// accumulates Σ p, Σ p x and Σ p g(x) around the centre of sweep 1 for a KL without
// cancellation: two exponentials per element. With gradients, sweep 3 writes them, three more
// exponentials per element; the backward pass then reads nothing of size B × C. When
// BATCH_IN_WORKGROUP, one workgroup visits every row and reduces the losses itself: the
// forward pass is one dispatch. Otherwise rows are spread over the grid's y dimension and
// distill_reduce.wgsl sums the per-row losses when a scalar is asked for.

@group(0) @binding(0) var<storage, read> student: array<Chunk>;
@group(0) @binding(1) var<storage, read> teacher: array<Chunk>;
@group(0) @binding(2) var<storage, read> labelIndices: array<i32>;
@group(0) @binding(3) var<storage, read> denseLabels: array<Chunk>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> gradStudent: array<Chunk>;
@group(0) @binding(8) var<storage, read_write> gradTeacher: array<Chunk>;

override TILE_COLS: u32 = 256u;
override DENSE_LABELS: bool = false;
override BATCH_IN_WORKGROUP: bool = false;
override WRITE_STUDENT_GRAD: bool = false;
override WRITE_TEACHER_GRAD: bool = false;
override WORKGROUP_SIZE: u32 = 256u;

// One invocation's share of a row, relative to its own running maxima.
struct RowState {
  ms: f32,
  mt: f32,
  z1: f32,        // Σ exp(s − ms)
  zs: f32,        // Σ exp((s − ms) / T)
  zt: f32,        // Σ exp(v),  v = (t − mt) / T
  pv: f32,        // Σ exp(v) · v
  pu: f32,        // Σ exp(v) · u,  u = (s − ms) / T
  labelDot: f32,  // Σ y (s − ms)
  labelSum: f32,  // Σ y
}

var<workgroup> sharedState: array<RowState, WORKGROUP_SIZE>;
var<workgroup> sharedFlags: array<u32, WORKGROUP_SIZE>;
var<workgroup> sharedLoss: array<f32, WORKGROUP_SIZE>;
// Sweep 2's partial sums (Σ p, Σ p x, Σ p g(x)) on their way through the tree.
var<workgroup> sharedMoments: array<vec4<f32>, WORKGROUP_SIZE>;

fn emptyState() -> RowState {
  return RowState(LOWEST_LOGIT, LOWEST_LOGIT, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
}

// Folds one chunk into a state: the sums are rescaled only when the chunk raises a running
// maximum (rare after the first chunks, so the branch's exponentials are rarely paid), then the
// chunk's terms are added.
fn addChunk(st0: RowState, s: Chunk, t: Chunk, y: Chunk, invT: f32) -> RowState {
  var st = st0;
  let chunkMaxS = chunkMax(s);
  if (chunkMaxS > st.ms) {
    // Every u so far drops by shift / T: so does their p-weighted sum.
    let shift = st.ms - chunkMaxS;
    st.z1 *= exp(shift);
    st.zs *= exp(shift * invT);
    st.pu += st.zt * (shift * invT);
    st.labelDot += st.labelSum * shift;
    st.ms = chunkMaxS;
  }
  let chunkMaxT = chunkMax(t);
  if (chunkMaxT > st.mt) {
    // Every v so far drops by shiftV and every weight exp(v) shrinks by exp(shiftV).
    let shiftV = (st.mt - chunkMaxT) * invT;
    let scale = exp(shiftV);
    st.pv = scale * (st.pv + st.zt * shiftV);
    st.pu *= scale;
    st.zt *= scale;
    st.mt = chunkMaxT;
  }
  let d = s - Chunk(st.ms);
  let u = d * invT;
  let v = (t - Chunk(st.mt)) * invT;
  let ev = exp(v);
  st.z1 += chunkSum(exp(d));
  st.zs += chunkSum(exp(u));
  st.zt += chunkSum(ev);
  st.pv += chunkSum(ev * v);
  st.pu += chunkSum(ev * u);
  // Index labels add their one term later (withIndexLabel): nothing to do per chunk.
  if (DENSE_LABELS) {
    st.labelDot += chunkSum(y * d);
    st.labelSum += chunkSum(y);
  }
  return st;
}

// Merges two states (the workgroup tree): both rescaled to the larger maxima.
fn mergeStates(p: RowState, q: RowState, invT: f32) -> RowState {
  let ms = max(p.ms, q.ms);
  let mt = max(p.mt, q.mt);
  let ps = p.ms - ms;
  let qs = q.ms - ms;
  let pv = (p.mt - mt) * invT;
  let qv = (q.mt - mt) * invT;
  let pt = exp(pv);
  let qt = exp(qv);
  return RowState(
    ms,
    mt,
    p.z1 * exp(ps) + q.z1 * exp(qs),
    p.zs * exp(ps * invT) + q.zs * exp(qs * invT),
    p.zt * pt + q.zt * qt,
    pt * (p.pv + p.zt * pv) + qt * (q.pv + q.zt * qv),
    pt * (p.pu + p.zt * (ps * invT)) + qt * (q.pu + q.zt * (qs * invT)),
    (p.labelDot + p.labelSum * ps) + (q.labelDot + q.labelSum * qs),
    p.labelSum + q.labelSum);
}

// Index labels contribute one term, read once per row by the row's first invocation.
// An out-of-range label is never used as an address: it flags the row instead.
fn withIndexLabel(row: u32, st: RowState, flags: ptr<function, u32>) -> RowState {
  let label = labelIndices[row];
  var out = st;
  out.labelSum = 1.0;
  out.labelDot = 0.0;
  if (label < 0 || u32(label) >= params.classes) {
    *flags = *flags | FLAG_BAD_LABEL;
  } else {
    let e = row * params.classes + u32(label);
    out.labelDot = chunkLane(student[e / CHUNK], e % CHUNK) - st.ms;
  }
  return out;
}

// A row's merged state as statistics: the log-sums, the centre c = E_p[δ] and the direct KL_b
// (kept only where the centre is too large for the refinement, see distill_common.wgsl).
fn rowStats(st: RowState, flags: u32) -> RowStats {
  let logZS = log(st.zs);
  let logZT = log(st.zt);
  // E_p[v] − E_p[u]: each term is relative to its own row maximum, so an offset between
  // student and teacher (a row shifted by 1e4) cancels before any rounding.
  let centre = (st.pv - st.pu) / st.zt;
  let kl = centre - logZT + logZS;
  return RowStats(st.ms, st.mt, log(st.z1), logZS, logZT, kl, st.labelSum, flags, centre, 0.0);
}

// Sweep 2, one invocation's share of a row: (Σ p, Σ p x, Σ p g(x)) with x = δ − c.
fn momentsOfRow(base: u32, col: u32, chunksPerRow: u32, rs: RowStats) -> vec4<f32> {
  let invT = params.invTemperature;
  var acc = vec4<f32>(0.0);
  for (var c = col; c < chunksPerRow; c += TILE_COLS) {
    let u = (student[base + c] - Chunk(rs.ms)) * invT;
    let v = (teacher[base + c] - Chunk(rs.mt)) * invT;
    let p = exp(v - Chunk(rs.logZT));
    let x = (v - u) - Chunk(rs.centre);
    acc += vec4<f32>(chunkSum(p), chunkSum(p * x), chunkSum(weightedG(p, x, u, rs.centre, rs.logZT)), 0.0);
  }
  return acc;
}

// The refined KL_b and E_p[x] from the row's merged moments.
fn withMoments(rs0: RowStats, m: vec4<f32>) -> RowStats {
  var rs = rs0;
  rs.meanX = m.y / m.x;
  if (rs.centre < CENTRE_LIMIT) {
    rs.kl = klFromMoments(m.z / m.x, rs.meanX);
  }
  return rs;
}

// ℓ_b from the statistics (the CE term needs the label term of the state), and the
// statistics written out for the backward kernel.
fn finishRow(row: u32, st: RowState, rs: RowStats) -> f32 {
  let ce = st.labelSum * rs.logZ1 - st.labelDot;
  var loss = params.alpha * ce + params.klWeight * rs.kl;
  var klOut = rs.kl;
  if ((rs.flags & FLAG_NAN) != 0u) {
    loss = quietNan();
    klOut = quietNan();
  }
  if ((rs.flags & FLAG_BAD_LABEL) != 0u) {
    loss = quietNan();
  }
  let base = row * STATS_STRIDE;
  stats[base + 0u] = rs.ms;
  stats[base + 1u] = rs.mt;
  stats[base + 2u] = rs.logZ1;
  stats[base + 3u] = rs.logZS;
  stats[base + 4u] = rs.logZT;
  stats[base + 5u] = klOut;
  stats[base + 6u] = rs.labelSum;
  stats[base + 7u] = f32(rs.flags);
  stats[base + 8u] = rs.centre;
  stats[base + 9u] = rs.meanX;
  return loss;
}

// Sweep 2 (only when a tape records the op): the row's gradients at upstream weight rowWeight.
fn writeGradients(row: u32, base: u32, col: u32, chunksPerRow: u32, rs: RowStats) {
  var label = -1;
  if (!DENSE_LABELS) { label = labelIndices[row]; }
  let w = params.rowWeight;
  for (var c = col; c < chunksPerRow; c += TILE_COLS) {
    let s = student[base + c];
    let t = teacher[base + c];
    if (WRITE_STUDENT_GRAD) {
      var y: Chunk;
      if (DENSE_LABELS) {
        y = denseLabels[base + c];
      } else {
        y = chunkOneHot(c * CHUNK, label);
      }
      gradStudent[base + c] = studentGradOut(w, studentGradChunk(s, t, y, rs), rs);
    }
    if (WRITE_TEACHER_GRAD) {
      gradTeacher[base + c] = teacherGradOut(w, teacherGradChunk(s, t, rs), rs);
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tileRows = WORKGROUP_SIZE / TILE_COLS;
  let r = lid / TILE_COLS;
  let col = lid % TILE_COLS;
  let chunksPerRow = params.classes / CHUNK;
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
    let base = row * chunksPerRow;

    var st = emptyState();
    var flags = 0u;
    if (rowActive) {
      for (var c = col; c < chunksPerRow; c += TILE_COLS) {
        let s = student[base + c];
        let t = teacher[base + c];
        var y = Chunk(0.0);
        if (DENSE_LABELS) {
          y = denseLabels[base + c];
          if (chunkHasNan(y)) { flags = flags | FLAG_BAD_LABEL; }
        }
        if (chunkHasNan(s) || chunkHasNan(t)) { flags = flags | FLAG_NAN; }
        st = addChunk(st, s, t, y, invT);
      }
    }
    if (TILE_COLS > 1u) {
      sharedState[lid] = st;
      sharedFlags[lid] = flags;
      workgroupBarrier();
      for (var stride = TILE_COLS / 2u; stride > 0u; stride = stride / 2u) {
        if (col < stride) {
          sharedState[lid] = mergeStates(sharedState[lid], sharedState[lid + stride], invT);
          sharedFlags[lid] = sharedFlags[lid] | sharedFlags[lid + stride];
        }
        workgroupBarrier();
      }
      st = sharedState[r * TILE_COLS];
      flags = sharedFlags[r * TILE_COLS];
      // The next row writes these arrays; every invocation must have read its row's slot.
      workgroupBarrier();
    }

    if (rowActive && !DENSE_LABELS) {
      // Every invocation of the row group reads the label: sweep 2 needs its flag too.
      st = withIndexLabel(row, st, &flags);
    }
    var rs = rowStats(st, flags);
    var moments = vec4<f32>(0.0);
    if (rowActive) {
      moments = momentsOfRow(base, col, chunksPerRow, rs);
    }
    if (TILE_COLS > 1u) {
      sharedMoments[lid] = moments;
      workgroupBarrier();
      for (var stride = TILE_COLS / 2u; stride > 0u; stride = stride / 2u) {
        if (col < stride) {
          sharedMoments[lid] += sharedMoments[lid + stride];
        }
        workgroupBarrier();
      }
      moments = sharedMoments[r * TILE_COLS];
      workgroupBarrier();
    }
    rs = withMoments(rs, moments);
    if (rowActive && col == 0u) {
      let loss = finishRow(row, st, rs);
      if (BATCH_IN_WORKGROUP) {
        lossAcc += loss;
      } else {
        losses[row] = loss;
      }
    }
    if (rowActive && (WRITE_STUDENT_GRAD || WRITE_TEACHER_GRAD)) {
      writeGradients(row, base, col, chunksPerRow, rs);
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
