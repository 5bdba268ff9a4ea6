// distill-sparse.wgsl — the distillation loss against a sparse (top-K) teacher: per-row losses
// (or their reduction over the batch), row statistics, and the student's gradient; also the
// backward pass (BACKWARD) that rewrites that gradient for an upstream dy from the statistics.
//
// Maths, per row b (src/sparse-teacher.ts; docs/top-k-teachers.md), with s the student's
// logits over all C classes, entries k = 1 … K of ids i_k and teacher log-probabilities ℓ_k
// (temperature 1), T the temperature, m_s = max_c s_c, d_c = s_c − m_s, u_c = d_c / T:
//   listed entries: i_k ≠ −1 (padding) and ℓ_k ≠ −Infinity (probability 0)
//   m_ℓ = max over listed ℓ_k,  v_k = (ℓ_k − m_ℓ) / T
//   Z1 = Σ_c exp(d_c)   ZS = Σ_c exp(u_c)   ZP = Σ_listed exp(v_k)   A = Σ_listed exp(v_k)(v_k − u_{i_k})
//   p_k = exp(v_k) / ZP,  log q_c = u_c − log ZS
//   KL_b = Σ_listed p_k (log p_k − log q_{i_k}) = A / ZP − log ZP + log ZS
//   CE_b = Σ_c y_c · log Z1 − Σ_c y_c d_c,   ℓ_b = α · CE_b + (1 − α) · k · KL_b   (k = T² or 1)
//   ∂ℓ_b/∂s_c = α (σ_c Σ y − y_c) + (1 − α) (k / T) (q_c − P_c),  P_c = Σ_{listed, i_k = c} p_k
// Every term is relative to its own maximum (m_s, m_ℓ): a large offset of either side cancels
// before any rounding. KL_b is not small where the teacher's support is a part of the
// vocabulary (it holds −log Σ_listed q, the student's mass outside the support): the direct
// form above is well conditioned there. Where K = C lists the whole vocabulary at high T, KL_b
// shrinks like 1/T² and keeps an absolute (not relative) error of a few ulps of log C; the
// dense op's centred form (distill-common.wgsl) is the one to use for full teachers.
// The teacher's entries are constants: no gradient is written for them.
//
// Row statistics, the dense kernels' layout (distill-common.wgsl) where the meaning is shared,
// so that distill-reduce.wgsl and distill-components.wgsl read them unchanged:
//   [m_s, m_ℓ, log Z1, log ZS, log ZP, KL_b, Σ_c y_c, flags, 0, 0, w_b, CE_b]
// flags: those of distill-common.wgsl. 1 (NaN): a NaN or +Infinity student logit, a NaN or
// +Infinity ℓ_k, an id outside [−1, C) (never used as an address), or no listed entry at all
// (the teacher has no distribution), or the student masked everywhere; 2: unusable labels;
// 4: ignored row; 8: the student masks (−Infinity) a listed id, KL_b = +Infinity; 16: label
// mass on a column the student masks; 32: the student's side of flag 1.
//
// Bindings (group 0), for the rows of one chunk (distill-common.wgsl, "Row chunks"): [·, C]
// arrays hold this chunk's rows from Chunk headChunks on; per-row arrays the whole batch.
//   0 student  Chunk[B·C/CHUNK] read
//   1 teacherIds i32[B·K] read          2 teacherLogProbs f32[B·K] read
//   3 labelIndices i32[B] read (index labels; a placeholder otherwise)
//   4 denseLabels  Chunk[B·C/CHUNK] read (float labels; a placeholder otherwise)
//   5 params   Params uniform
//   6 losses   forward: f32[B] per-row losses, or f32[1] when BATCH_IN_WORKGROUP; BACKWARD:
//              dy, f32[1] or f32[B] (read only: one binding for both keeps the kernel within
//              WebGPU's default of 8 storage buffers per stage)                  read_write
//   7 stats    f32[B·12] row statistics (written forward, read BACKWARD)        read_write
//   8 gradStudent Chunk[B·C/CHUNK] (a placeholder when not written)             read_write
//
// Thread plan (src/kernels/plan.ts, as the dense forward kernel): TILE_COLS invocations own a
// row. Sweep 1 reads the student's row once (online softmax: running maximum, sums rescaled
// when it grows): two exponentials per element (one when T = 1: then u = d). The K entries
// are then shared among the row's invocations, each reading ℓ_k and gathering s[i_k]; two
// shared-memory trees merge the partial states. With gradients, sweep 2 writes the dense part
// α (σ Σy − y) + (1 − α)(k/T) q over the row (two exponentials per element, one at T = 1 or
// when α or (1 − α) k is 0), and each
// invocation then subtracts (1 − α)(k/T) p_k at the ids in the Chunks it wrote itself, scanning
// all K entries in order: no two invocations touch one Chunk, duplicates add up in a fixed
// order, and no barrier is needed. No dense [rows, C] teacher is ever built.

@group(0) @binding(0) var<storage, read> student: array<Chunk>;
@group(0) @binding(1) var<storage, read> teacherIds: array<i32>;
@group(0) @binding(2) var<storage, read> teacherLogProbs: array<f32>;
@group(0) @binding(3) var<storage, read> labelIndices: array<i32>;
@group(0) @binding(4) var<storage, read> denseLabels: array<Chunk>;
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<storage, read_write> losses: array<f32>;
@group(0) @binding(7) var<storage, read_write> stats: array<StoredRowStats>;
@group(0) @binding(8) var<storage, read_write> gradStudent: array<Chunk>;

override TILE_COLS: u32 = 256u;
override WORKGROUP_SIZE: u32 = 256u;
override TOP_K: u32 = 1u;
override DENSE_LABELS: bool = false;
override BATCH_IN_WORKGROUP: bool = false;
override WRITE_STUDENT_GRAD: bool = false;
override IGNORE_INDEX: bool = false;
// The backward pass: statistics read, not computed; the gradient weighted by dy.
override BACKWARD: bool = false;

// One invocation's share of the student's row, relative to its running maximum.
struct StudentState {
  ms: f32,
  z1: f32,        // Σ exp(d)
  zs: f32,        // Σ exp(d / T)
  labelDot: f32,  // Σ y d (dense labels)
  labelSum: f32,  // Σ y
}

// One invocation's share of the listed entries, relative to its running maximum of ℓ.
struct TeacherState {
  ml: f32,
  zp: f32,        // Σ exp(v)
  a: f32,         // Σ exp(v) (v − u_i)
}

var<workgroup> sharedStudent: array<StudentState, WORKGROUP_SIZE>;
var<workgroup> sharedTeacher: array<TeacherState, WORKGROUP_SIZE>;
var<workgroup> sharedFlags: array<u32, WORKGROUP_SIZE>;
var<workgroup> sharedLoss: array<f32, WORKGROUP_SIZE>;
var<workgroup> sharedCount: array<u32, WORKGROUP_SIZE>;

fn addStudentChunk(st0: StudentState, s: Chunk, y: Chunk, invT: f32) -> StudentState {
  var st = st0;
  let maskS = chunkMasked(s);
  let chunkMaxS = chunkMax(select(s, Chunk(LOWEST_LOGIT), maskS));
  if (chunkMaxS > st.ms) {
    let shift = st.ms - chunkMaxS;
    st.z1 *= exp(shift);
    st.zs *= exp(shift * invT);
    st.labelDot += st.labelSum * shift;
    st.ms = chunkMaxS;
  }
  let d = select(s, Chunk(st.ms), maskS) - Chunk(st.ms);
  let e1 = select(exp(d), Chunk(0.0), maskS);
  st.z1 += chunkSum(e1);
  if (invT == 1.0) {
    st.zs += chunkSum(e1);
  } else {
    st.zs += chunkSum(select(exp(d * invT), Chunk(0.0), maskS));
  }
  if (DENSE_LABELS) {
    st.labelDot += chunkSum(y * d);
    st.labelSum += chunkSum(y);
  }
  return st;
}

fn mergeStudent(p: StudentState, q: StudentState, invT: f32) -> StudentState {
  let ms = max(p.ms, q.ms);
  let ps = p.ms - ms;
  let qs = q.ms - ms;
  return StudentState(
    ms,
    p.z1 * exp(ps) + q.z1 * exp(qs),
    p.zs * exp(ps * invT) + q.zs * exp(qs * invT),
    (p.labelDot + p.labelSum * ps) + (q.labelDot + q.labelSum * qs),
    p.labelSum + q.labelSum);
}

// A teacher state whose maximum moved to ml ≥ st.ml: every v drops by sv = (st.ml − ml) / T.
fn rescaleTeacher(st: TeacherState, ml: f32, invT: f32) -> TeacherState {
  if (st.zp == 0.0) { return TeacherState(ml, 0.0, 0.0); }
  let sv = (st.ml - ml) * invT;
  let scale = exp(sv);
  return TeacherState(ml, st.zp * scale, scale * (st.a + st.zp * sv));
}

fn mergeTeacher(p: TeacherState, q: TeacherState, invT: f32) -> TeacherState {
  let ml = max(p.ml, q.ml);
  let a = rescaleTeacher(p, ml, invT);
  let b = rescaleTeacher(q, ml, invT);
  return TeacherState(ml, a.zp + b.zp, a.a + b.a);
}

// Entry k of a row: whether it is listed, and flags for an unusable one (never an address).
fn entryFlags(id: i32, logProb: f32) -> u32 {
  if (id == -1) { return 0u; }
  var flags = 0u;
  if (id < -1 || id >= i32(params.classes)) { flags = FLAG_NAN; }
  // NaN or +Infinity (−Infinity is probability 0): by bits, as for logits
  let bits = bitcast<u32>(logProb);
  if ((bits & 0x7fffffffu) > 0x7f800000u || bits == 0x7f800000u) { flags = FLAG_NAN; }
  return flags;
}

fn isListed(id: i32, logProb: f32) -> bool {
  return id >= 0 && id < i32(params.classes) && !isMasked(logProb) &&
         (bitcast<u32>(logProb) & 0x7fffffffu) < 0x7f800000u;
}

// The student's logit at class `id` of the row starting at Chunk `base`.
fn studentAt(base: u32, id: u32) -> f32 {
  let e = base * CHUNK + id;
  return chunkLane(student[e / CHUNK], e % CHUNK);
}

// Sweep 2: the row's gradient at weight w (rowWeight, times dy in BACKWARD): the dense part over
// the Chunks this invocation owns, then −(1 − α)(k/T) p_k at the listed ids inside them.
fn writeGradient(row: u32, base: u32, col: u32, chunksPerRow: u32, rs: RowStats, w: f32) {
  let invT = params.invTemperature;
  var label = -1;
  if (!DENSE_LABELS) { label = labelIndices[row]; }
  let softScale = params.klWeight * invT;
  for (var c = col; c < chunksPerRow; c += TILE_COLS) {
    let s = student[base + c];
    let maskS = chunkMasked(s);
    let d = select(s, Chunk(rs.ms), maskS) - Chunk(rs.ms);
    var y: Chunk;
    if (DENSE_LABELS) {
      y = denseLabels[base + c];
    } else {
      y = chunkOneHot(c * CHUNK, label);
    }
    var g = Chunk(0.0);
    var sigma = Chunk(0.0);
    if (params.alpha != 0.0) {
      sigma = select(exp(d - Chunk(rs.logZ1)), Chunk(0.0), maskS);
      g = params.alpha * (sigma * rs.labelSum - y);
    }
    if (softScale != 0.0) {
      // at T = 1, q is σ (one exponential per element instead of two)
      var q = sigma;
      if (invT != 1.0 || params.alpha == 0.0) {
        q = select(exp(d * invT - Chunk(rs.logZS)), Chunk(0.0), maskS);
      }
      g += softScale * q;
    }
    gradStudent[base + c] = studentGradOut(w, g, rs);
  }
  // A flagged row's gradient is NaN or 0 throughout (its ids may not be addresses).
  if ((rs.flags & (FLAG_NAN | FLAG_BAD_LABEL | FLAG_IGNORED)) != 0u || softScale == 0.0) {
    return;
  }
  let entries = row * TOP_K;
  for (var k = 0u; k < TOP_K; k++) {
    let id = teacherIds[entries + k];
    if (id < 0) { continue; }
    let e = base * CHUNK + u32(id);
    let chunk = e / CHUNK;
    if ((chunk - base) % TILE_COLS != col) { continue; }
    let logProb = teacherLogProbs[entries + k];
    if (!isListed(id, logProb)) { continue; }
    let p = exp((logProb - rs.mt) * invT - rs.logZT);
    gradStudent[chunk] -= chunkOneHot(0u, i32(e % CHUNK)) * (w * (softScale * p));
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tileRows = WORKGROUP_SIZE / TILE_COLS;
  let r = lid / TILE_COLS;
  let col = lid % TILE_COLS;
  let chunksPerRow = params.classes / CHUNK;
  let invT = params.invTemperature;
  var firstLocal = wg.y * tileRows;
  var rowStep = params.gridRows * tileRows;
  if (BATCH_IN_WORKGROUP) {
    firstLocal = 0u;
    rowStep = tileRows;
  }
  var lossAcc = 0.0;
  var specials = 0u;
  var rowWeight = params.rowWeight;
  if (IGNORE_INDEX && params.countRows != 0u &&
      (BATCH_IN_WORKGROUP || WRITE_STUDENT_GRAD || BACKWARD)) {
    rowWeight = 1.0 / f32(max(countRows(lid), 1u));
  }

  // Uniform bound: every invocation reaches the barriers below the same number of times.
  for (var rowBase = firstLocal; rowBase < params.rows; rowBase += rowStep) {
    let local = rowBase + r;
    let rowActive = local < params.rows;
    let row = params.firstRow + local;
    let base = params.headChunks + local * chunksPerRow;

    if (BACKWARD) {
      if (rowActive) {
        // (binding 6 holds dy in the backward pass)
        var dyRow = losses[0];
        if (params.dyPerRow != 0u) { dyRow = losses[row]; }
        // (the statistics' weight is not used: rowWeight is the one this dispatch counted)
        let rs = loadRowStats(stats[row]);
        writeGradient(row, base, col, chunksPerRow, rs, rowWeight * dyRow);
      }
      continue;
    }

    // Sweep 1: the student's row.
    var st = StudentState(LOWEST_LOGIT, 0.0, 0.0, 0.0, 0.0);
    var flags = 0u;
    let ignored = rowActive && isIgnored(row);
    if (ignored) { flags = FLAG_IGNORED; }
    if (rowActive && !ignored) {
      for (var c = col; c < chunksPerRow; c += TILE_COLS) {
        let s = student[base + c];
        let maskS = chunkMasked(s);
        var y = Chunk(0.0);
        if (DENSE_LABELS) {
          y = denseLabels[base + c];
          if (chunkHasNan(y)) { flags = flags | FLAG_BAD_LABEL; }
          if (any(maskS & (y > Chunk(0.0)))) { flags = flags | FLAG_CE_INF; }
          if (any(maskS & (y < Chunk(0.0)))) { flags = flags | FLAG_BAD_LABEL; }
        }
        if (chunkNanOrPosInf(s)) { flags = flags | FLAG_NAN | FLAG_STUDENT_NAN; }
        st = addStudentChunk(st, s, y, invT);
      }
    }
    if (TILE_COLS > 1u) {
      sharedStudent[lid] = st;
      workgroupBarrier();
      for (var stride = TILE_COLS / 2u; stride > 0u; stride = stride / 2u) {
        if (col < stride) {
          sharedStudent[lid] = mergeStudent(sharedStudent[lid], sharedStudent[lid + stride], invT);
        }
        workgroupBarrier();
      }
      st = sharedStudent[r * TILE_COLS];
      workgroupBarrier();
    }

    // The listed entries, shared among the row's invocations, against the final m_s.
    var te = TeacherState(LOWEST_LOGIT, 0.0, 0.0);
    if (rowActive && !ignored) {
      let entries = row * TOP_K;
      for (var k = col; k < TOP_K; k += TILE_COLS) {
        let id = teacherIds[entries + k];
        let logProb = teacherLogProbs[entries + k];
        flags = flags | entryFlags(id, logProb);
        if (isListed(id, logProb)) {
          let sAt = studentAt(base, u32(id));
          // the student masks a listed id: KL_b = +Infinity (selected in finishRow)
          if (isMasked(sAt)) { flags = flags | FLAG_KL_INF; }
          let u = (select(sAt, st.ms, isMasked(sAt)) - st.ms) * invT;
          if (logProb > te.ml) { te = rescaleTeacher(te, logProb, invT); }
          let v = (logProb - te.ml) * invT;
          let ev = exp(v);
          te.zp += ev;
          te.a += ev * (v - u);
        }
      }
    }
    if (TILE_COLS > 1u) {
      sharedTeacher[lid] = te;
      sharedFlags[lid] = flags;
      workgroupBarrier();
      for (var stride = TILE_COLS / 2u; stride > 0u; stride = stride / 2u) {
        if (col < stride) {
          sharedTeacher[lid] = mergeTeacher(sharedTeacher[lid], sharedTeacher[lid + stride], invT);
          sharedFlags[lid] = sharedFlags[lid] | sharedFlags[lid + stride];
        }
        workgroupBarrier();
      }
      te = sharedTeacher[r * TILE_COLS];
      flags = sharedFlags[r * TILE_COLS];
      workgroupBarrier();
    }

    var labelDot = st.labelDot;
    var labelSum = st.labelSum;
    if (rowActive && !DENSE_LABELS && !ignored) {
      let label = labelIndices[row];
      labelSum = 1.0;
      labelDot = 0.0;
      if (label < 0 || u32(label) >= params.classes) {
        flags = flags | FLAG_BAD_LABEL;
      } else {
        let sLabel = studentAt(base, u32(label));
        if (isMasked(sLabel)) {
          flags = flags | FLAG_CE_INF;
        } else {
          labelDot = sLabel - st.ms;
        }
      }
    }
    if (rowActive && !ignored && st.z1 == 0.0) { flags = flags | FLAG_NAN | FLAG_STUDENT_NAN; }
    // no listed entry: the teacher has no distribution
    if (rowActive && !ignored && te.zp == 0.0) { flags = flags | FLAG_NAN; }
    let logZS = log(st.zs);
    let logZP = log(te.zp);
    let kl = te.a / te.zp - logZP + logZS;
    let rs = RowStats(st.ms, te.ml, log(st.z1), logZS, logZP, kl, labelSum, flags, 0.0, 0.0);
    if (rowActive && col == 0u) {
      addRowLoss(row, finishRow(row, rs, labelDot, rowWeight), &lossAcc, &specials);
    }
    if (rowActive && WRITE_STUDENT_GRAD) {
      writeGradient(row, base, col, chunksPerRow, rs, rowWeight);
    }
  }

  if (BATCH_IN_WORKGROUP && !BACKWARD) {
    writeBatchLoss(lid, lossAcc, specials, rowWeight);
  }
}
