// distill-forward.wgsl — forward pass of the distillation loss: per-row losses (or their
// reduction over the batch), per-row statistics and, when a tape records the op, the
// gradients at unit upstream gradient (as Liger-Kernel does: the backward pass then only
// scales them by dy, or hands them over untouched when dy is the implicit 1 of a loss).
//
// Forward, per row b (notation of distill-common.wgsl):
//   ℓ_b = α · (Σ y · log Z1 − Σ y d) + (1 − α) k · D_b,  D_b the divergence (DIVERGENCE,
//   shaders/distill-divergence.wgsl); forward KL: KL_b = E_p[g(x)] − h(y) (the
//   cancellation-free form of distill-common.wgsl, from sums kept around a moving centre)
//   output: ℓ_b for 'none'; rowWeight · Σ_b ℓ_b for 'mean' (rowWeight = 1/B) and 'sum'.
// Gradients (WRITE_STUDENT_GRAD / WRITE_TEACHER_GRAD), written as rowWeight · ∂ℓ_b/∂·:
//   ∂ℓ_b/∂s_c = α (σ_c Σ y − y_c) + (1 − α) (k / T) (q_c − p_c)
//   ∂ℓ_b/∂t_c = (1 − α) (k / T) · p_c (x_c − E_p[x])   (see distill-common.wgsl)
// (forward KL; the other divergences' ∂D/∂s and ∂D/∂t: shaders/distill-divergence.wgsl)
//
// Bindings (group 0), for the rows of one chunk (distill-common.wgsl, "Row chunks"): the
// [·, C] arrays hold this chunk's rows from Chunk headChunks on; per-row arrays the whole batch.
//   0 student  Chunk[B·C/CHUNK] read          1 teacher Chunk[B·C/CHUNK] read
//   2 labelIndices i32[B] read (index labels; a placeholder otherwise)
//   3 denseLabels  Chunk[B·C/CHUNK] read (float labels; a placeholder otherwise)
//   4 params   Params uniform
//   5 losses   f32[B] per-row losses, or f32[1] when BATCH_IN_WORKGROUP        read_write
//   6 stats    f32[B·12] row statistics                                        read_write
//   7 gradStudent Chunk[B·C/CHUNK], 8 gradTeacher Chunk[B·C/CHUNK]          read_write
//     (each a 16-byte placeholder, never touched, when its gradient is not written)
//
// Thread plan: a workgroup of TILE_ROWS × TILE_COLS = 256 invocations; each group of TILE_COLS
// invocations owns one row and strides over its chunks (vec4s when C % 4 == 0). TILE_COLS = 1
// (small C, e.g. MNIST's 10) is a thread per row with no barrier inside a row; TILE_COLS = 256
// (large C) is a workgroup per row whose invocations merge their partial states in a
// shared-memory tree. One sweep over the row: the maxima are running maxima and the sums are
// rescaled when a maximum grows (online softmax), so s and t are read once (twice in a row that
// holds a mask, NaN or infinity: "Fast rows" below). The centred KL sums
// (Σ e^v x, Σ e^v g(x), x = δ − centre) ride along: the centre moves with the maxima (x never
// changes) and is reset to the running mean of δ, with an exact recentring of the sums, when it
// has drifted by a quarter of a standard deviation (rare after the first chunks); e^v e^−x is
// e^u times a row constant, so they cost no exponential. Exponentials: three per element (exp d,
// exp u, exp v), plus four per new running maximum or recentring. With gradients, a second
// sweep over the row (still in cache: the row group has just read it) writes them, two or three
// more exponentials per element; the backward pass then reads nothing of size B × C. Fast rows:
// sweep 1 first assumes every logit finite (the same formulas with the masks' selects folded
// away and no NaN/infinity/mask flags; it only tests exponent bits); a row that holds a mask,
// NaN or infinity is swept again in the general form (one extra pass where masks are used,
// nothing where they are not: a per-chunk choice would not do, since a CPU rasteriser runs both
// sides of a branch its lanes disagree on), and its gradient sweep takes the general form too.
// Reverse KL and
// the JSD need log ZS and log ZT before their sums (distill-divergence.wgsl): the online sweep
// keeps the maxima and log-sums only (the centred KL sums off), then a second sweep over the
// row (still in cache) adds the divergence's terms, merged by the same kind of tree; without
// gradients that second statistics sweep is the price of those divergences (s and t read twice
// instead of once), with them the gradient sweep is a third (one more for a row with masks).
// The dispatches are the same. When
// BATCH_IN_WORKGROUP, one workgroup visits every row and reduces the losses itself: the
// forward pass is one dispatch. Otherwise rows are spread over the grid's y dimension and
// distill-reduce.wgsl sums the per-row losses when a scalar is asked for.

@group(0) @binding(0) var<storage, read> student: array<Chunk>;
@group(0) @binding(1) var<storage, read> teacher: array<Chunk>;
@group(0) @binding(2) var<storage, read> labelIndices: array<i32>;
@group(0) @binding(3) var<storage, read> denseLabels: array<Chunk>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<StoredRowStats>;
@group(0) @binding(7) var<storage, read_write> gradStudent: array<Chunk>;
@group(0) @binding(8) var<storage, read_write> gradTeacher: array<Chunk>;

override TILE_COLS: u32 = 256u;
override DENSE_LABELS: bool = false;
override BATCH_IN_WORKGROUP: bool = false;
override WRITE_STUDENT_GRAD: bool = false;
override WRITE_TEACHER_GRAD: bool = false;
override WORKGROUP_SIZE: u32 = 256u;
// int32 labels with an ignore index (params.ignoreIndex; distill-common.wgsl, flag 4).
override IGNORE_INDEX: bool = false;

// One invocation's share of a row, relative to its own running maxima.
struct RowState {
  ms: f32,
  mt: f32,
  z1: f32,        // Σ exp(s − ms)
  zs: f32,        // Σ exp((s − ms) / T)
  zm: f32,        // the part of zs on columns the teacher masks (distill-common.wgsl, masks)
  zt: f32,        // Σ exp(v),  v = (t − mt) / T
  pv: f32,        // Σ exp(v) · v
  pu: f32,        // Σ exp(v) · u,  u = (s − ms) / T
  labelDot: f32,  // Σ y (s − ms)
  labelSum: f32,  // Σ y
  // The centred KL sums (distill-common.wgsl), around a centre mc in the δ = v − u of the
  // current maxima: x = δ − mc, weights e^v (those of zt).
  mc: f32,        // the centre; moved with the maxima, so x of a visited element never changes
  em: f32,        // exp(mc) ≥ 0, or −1 once the centred sums are abandoned (direct KL for the row)
  ax: f32,        // Σ e^v x
  rg: f32,        // Σ e^v g(x) ≥ 0
}

var<workgroup> sharedState: array<RowState, WORKGROUP_SIZE>;
var<workgroup> sharedFlags: array<u32, WORKGROUP_SIZE>;
var<workgroup> sharedLoss: array<f32, WORKGROUP_SIZE>;
var<workgroup> sharedCount: array<u32, WORKGROUP_SIZE>;
// anyRowFlag's answer, read back as a uniform value
var<workgroup> sharedAnyFlag: u32;
// The tree of the divergence sums (reverse KL, JSD: distill-divergence.wgsl): a slot per
// invocation where a row group has several, else one slot, never used (forward KL).
override SUM_SLOTS: u32 = select(1u, WORKGROUP_SIZE,
                                 DIVERGENCE != DIVERGENCE_FORWARD_KL && TILE_COLS > 1u);
var<workgroup> sharedSums: array<DivergenceSums, SUM_SLOTS>;

// (em starts at −1, the centred KL sums off, where the divergence is not forward KL: the second
// sweep computes it, distill-divergence.wgsl)
fn emptyState() -> RowState {
  return RowState(LOWEST_LOGIT, LOWEST_LOGIT, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                  select(1.0, -1.0, divergenceNeedsSums()), 0.0, 0.0);
}

// A scalar through the chunk-typed series (lane 0).
fn expm1Scalar(z: f32) -> f32 {
  if (abs(z) < 1.0) { return chunkLane(expm1Series(Chunk(z)), 0u); }
  return exp(z) - 1.0;
}

// g(−Δ) = e^Δ − 1 − Δ ≥ 0.
fn gNegScalar(d: f32) -> f32 {
  if (abs(d) < 1.0) { return chunkLane(gSeries(Chunk(-d)), 0u); }
  return exp(d) - 1.0 - d;
}

// The centred sums of a state whose teacher maximum rose: every v moved by shiftV ≤ 0 and every
// weight e^v by scale = e^shiftV (w: the total weight before).
fn shiftTeacherMax(st0: RowState, w: f32, shiftV: f32, scale: f32) -> RowState {
  var st = st0;
  if (shiftV > -30.0) {
    // x unchanged: the centre moves with δ, and every term scales with its weight.
    st.mc += shiftV;
    st.em *= scale;
    st.ax *= scale;
    st.rg *= scale;
  } else {
    // The old weights all but vanish: keep the centre, so that e^v e^−x = e^(u + mc) keeps its
    // size (it is the student's mass, not the teacher's), and move x by shiftV instead:
    //   Σ s w g(x + shiftV) = Σ w e^−x − s Σ w + s Σ w x + s shiftV Σ w,
    // with Σ w e^−x = Σ e^(u + mc) = e^mc (ZS − ZM) over the columns the teacher does not mask
    // (no cancellation: the s terms are below e^−30; ZM = 0 without masks).
    st.rg = st.em * (st.zs - st.zm) + scale * (st.ax + (shiftV - 1.0) * w);
    st.ax = scale * (st.ax + shiftV * w);
  }
  return st;
}

// Moves the centred sums of a state with total weight w to the centre mc + d, exactly:
//   Σ w g(x − d) = e^d Σ w g(x) + w g(−d) − expm1(d) Σ w x,   Σ w (x − d) = Σ w x − w d.
// Every term but the last is ≥ 0, and the last is small (Σ w x is near 0 around a mean).
fn recentre(st0: RowState, w: f32, d: f32) -> RowState {
  var st = st0;
  // (a move down never overflows: e^d → 0; a move up is bounded so that e^d R stays finite)
  if (d > CENTRE_LIMIT || st.mc + d > CENTRE_LIMIT) {
    st.em = -1.0;
    return st;
  }
  // (w may be 0 while the sums are not: the student's mass e^(u + mc) of elements whose teacher
  // weights underflowed; the w term is skipped then, never computed as 0 · g)
  var weighted = 0.0;
  if (w > 0.0) { weighted = w * gNegScalar(d); }
  st.rg = exp(d) * st.rg + weighted - expm1Scalar(d) * st.ax;
  st.ax = st.ax - w * d;
  st.mc = st.mc + d;
  st.em = exp(st.mc);
  return st;
}

// Chunks are folded into a state in pairs (foldPair; a row's last odd chunk alone, foldChunk):
// the sums are rescaled only when a pair raises a running maximum and the centre is checked once
// per pair. Those branches are rarely taken after the first chunks, but a CPU rasteriser runs a
// branch's body whenever any of its SIMD lanes might take it, so on lavapipe their exponentials
// were paid on every chunk (knocking them out took the forward sweep from 27 ms to 15 ms at
// 256 × 32768); per pair that cost is halved. The sums and their order of addition are those of
// one chunk after the other; only the rescalings and recentrings are fewer.
// Masked (−Infinity) elements take part as finite stand-ins whose terms are selected to 0
// (maskS, maskT: chunkMasked of s and t, or constant false in a fast row's sweep, where the
// selects fold away).

// The running maxima raised to newMs and newMt where those exceed them, every sum rescaled.
fn raiseMaxima(st0: RowState, newMs: f32, newMt: f32, invT: f32) -> RowState {
  var st = st0;
  if (newMs > st.ms) {
    // Every u so far drops by shift / T: so does their p-weighted sum.
    let shift = st.ms - newMs;
    st.z1 *= exp(shift);
    let scaleU = exp(shift * invT);
    st.zs *= scaleU;
    st.zm *= scaleU;
    st.pu += st.zt * (shift * invT);
    st.labelDot += st.labelSum * shift;
    st.ms = newMs;
    // every δ so far grows by −shift/T: so does the centre, and x is unchanged
    // (exp(mc) must stay finite for the teacher's shift below, which may lower mc again: the
    // limit is tested once both have moved it)
    if (st.zt > 0.0 && st.em >= 0.0) {
      st.mc -= shift * invT;
      st.em = select(exp(st.mc), -1.0, st.mc > 80.0);
    }
  }
  if (newMt > st.mt) {
    // Every v so far drops by shiftV and every weight exp(v) shrinks by exp(shiftV).
    let shiftV = (st.mt - newMt) * invT;
    let scale = exp(shiftV);
    // (before the first chunk there is nothing to move: the first chunk sets the centre)
    if (st.zt > 0.0 && st.em >= 0.0) {
      st = shiftTeacherMax(st, st.zt, shiftV, scale);
    }
    st.pv = scale * (st.pv + st.zt * shiftV);
    st.pu *= scale;
    st.zt *= scale;
    st.mt = newMt;
  }
  if (st.em >= 0.0 && st.mc > CENTRE_LIMIT) {
    st.em = -1.0;
  }
  return st;
}

// A chunk's largest student and teacher logits, masks left out.
fn chunkMaxS(s: Chunk, maskS: ChunkMask) -> f32 {
  return chunkMax(select(s, Chunk(LOWEST_LOGIT), maskS));
}

// What a chunk's centred terms need, kept from its plain ones.
struct ChunkTerms {
  d: Chunk,
  u: Chunk,
  v: Chunk,
  ev: Chunk,
  eu: Chunk,
}

// A chunk's plain sums at the current maxima: Z1, ZS (ZM), ZT, Σ e^v v, Σ e^v u.
fn addPlainTerms(st: ptr<function, RowState>, s: Chunk, t: Chunk, invT: f32, maskS: ChunkMask,
                 maskT: ChunkMask) -> ChunkTerms {
  let d = select(s, Chunk((*st).ms), maskS) - Chunk((*st).ms);
  let u = d * invT;
  let v = (select(t, Chunk((*st).mt), maskT) - Chunk((*st).mt)) * invT;
  let ev = select(exp(v), Chunk(0.0), maskT);
  let eu = select(exp(u), Chunk(0.0), maskS);
  (*st).z1 += chunkSum(select(exp(d), Chunk(0.0), maskS));
  (*st).zs += chunkSum(eu);
  (*st).zm += chunkSum(select(Chunk(0.0), eu, maskT));
  (*st).zt += chunkSum(ev);
  (*st).pv += chunkSum(ev * v);
  (*st).pu += chunkSum(ev * u);
  return ChunkTerms(d, u, v, ev, eu);
}

// Recentre on the running mean of δ when it has drifted from the centre by more than a quarter
// of a standard deviation (drift² > Var/16, Var ≈ 2 Σ e^v g / Σ e^v), or at the first chunk
// (weightBefore, the weight already in the centred sums, is 0): the sums then stay within
// 1 + 1/16 of their centred values (no cancellation). Called after the plain terms of the
// chunks about to be added, before their centred ones.
fn recentreIfDrifted(st0: RowState, weightBefore: f32) -> RowState {
  var st = st0;
  // (zt is 0 only while every teacher logit so far is masked: no centre to set yet)
  if (st.em >= 0.0 && st.zt > 0.0) {
    let drift = (st.pv - st.pu) / st.zt - st.mc;
    if (weightBefore == 0.0 || 8.0 * drift * drift * st.zt > st.rg) {
      st = recentre(st, weightBefore, drift);
    }
  }
  return st;
}

// A chunk's centred terms (and dense labels' terms) around the current centre.
fn addCentredTerms(st: ptr<function, RowState>, k: ChunkTerms, y: Chunk, maskT: ChunkMask) {
  if ((*st).em >= 0.0) {
    // e^v g(x) = e^v e^−x − e^v + e^v x, e^v e^−x = e^(u + mc): no exponential of its own.
    let x = (k.v - k.u) - Chunk((*st).mc);
    let pe = k.eu * (*st).em;
    (*st).ax += chunkSum(k.ev * x);
    // (the teacher's masked columns: their e^(u + mc) is kept in zm instead)
    let term = select(pe - k.ev + k.ev * x, k.ev * gSeries(x), abs(x) < Chunk(1.0));
    (*st).rg += chunkSum(select(term, Chunk(0.0), maskT));
  }
  // Index labels add their one term later (withIndexLabel): nothing to do per chunk.
  if (DENSE_LABELS) {
    (*st).labelDot += chunkSum(y * k.d);
    (*st).labelSum += chunkSum(y);
  }
}

// Folds one chunk into a state.
fn foldChunk(st0: RowState, s: Chunk, t: Chunk, y: Chunk, invT: f32, maskS: ChunkMask,
             maskT: ChunkMask) -> RowState {
  var st = raiseMaxima(st0, chunkMaxS(s, maskS), chunkMaxS(t, maskT), invT);
  let weightBefore = st.zt;
  let k = addPlainTerms(&st, s, t, invT, maskS, maskT);
  st = recentreIfDrifted(st, weightBefore);
  addCentredTerms(&st, k, y, maskT);
  return st;
}

// Folds two chunks into a state: one raise of the maxima and one centre check for both.
fn foldPair(st0: RowState, s0: Chunk, t0: Chunk, y0: Chunk, s1: Chunk, t1: Chunk, y1: Chunk,
            invT: f32, maskS0: ChunkMask, maskT0: ChunkMask, maskS1: ChunkMask,
            maskT1: ChunkMask) -> RowState {
  var st = raiseMaxima(st0, max(chunkMaxS(s0, maskS0), chunkMaxS(s1, maskS1)),
                       max(chunkMaxS(t0, maskT0), chunkMaxS(t1, maskT1)), invT);
  let weightBefore = st.zt;
  let k0 = addPlainTerms(&st, s0, t0, invT, maskS0, maskT0);
  let k1 = addPlainTerms(&st, s1, t1, invT, maskS1, maskT1);
  st = recentreIfDrifted(st, weightBefore);
  addCentredTerms(&st, k0, y0, maskT0);
  addCentredTerms(&st, k1, y1, maskT1);
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
  let zt = p.zt * pt + q.zt * qt;
  let pvSum = pt * (p.pv + p.zt * pv) + qt * (q.pv + q.zt * qv);
  let puSum = pt * (p.pu + p.zt * (ps * invT)) + qt * (q.pu + q.zt * (qs * invT));
  // Both centred sums on the common maxima (centres move with them, weights scale), then both
  // recentred on the merged mean of δ and added.
  var a = shiftTeacherMax(p, p.zt, pv, pt);
  var b = shiftTeacherMax(q, q.zt, qv, qt);
  a.mc -= ps * invT;
  b.mc -= qs * invT;
  var em = -1.0;
  var mc = 0.0;
  var ax = 0.0;
  var rg = 0.0;
  if (p.em >= 0.0 && q.em >= 0.0 && zt > 0.0) {
    mc = (pvSum - puSum) / zt;
    a = recentre(a, p.zt * pt, mc - a.mc);
    b = recentre(b, q.zt * qt, mc - b.mc);
    if (a.em >= 0.0 && b.em >= 0.0) {
      em = exp(mc);
      ax = a.ax + b.ax;
      rg = a.rg + b.rg;
    }
  }
  // An empty partner (an invocation without chunks, or whose teacher logits are all masked)
  // keeps the other's sums as they are; two empty ones give an empty state.
  if (q.zt == 0.0) { em = select(-1.0, exp(a.mc), p.em >= 0.0); mc = a.mc; ax = a.ax; rg = a.rg; }
  if (p.zt == 0.0) { em = select(-1.0, exp(b.mc), q.em >= 0.0); mc = b.mc; ax = b.ax; rg = b.rg; }
  if (p.zt == 0.0 && q.zt == 0.0) { em = 1.0; mc = 0.0; ax = 0.0; rg = 0.0; }
  return RowState(
    ms,
    mt,
    p.z1 * exp(ps) + q.z1 * exp(qs),
    p.zs * exp(ps * invT) + q.zs * exp(qs * invT),
    p.zm * exp(ps * invT) + q.zm * exp(qs * invT),
    p.zt * pt + q.zt * qt,
    pt * (p.pv + p.zt * pv) + qt * (q.pv + q.zt * qv),
    pt * (p.pu + p.zt * (ps * invT)) + qt * (q.pu + q.zt * (qs * invT)),
    (p.labelDot + p.labelSum * ps) + (q.labelDot + q.labelSum * qs),
    p.labelSum + q.labelSum,
    mc,
    em,
    ax,
    rg);
}

// Index labels contribute one term, read once per row by the row's first invocation.
// An out-of-range label is never used as an address: it flags the row instead.
fn withIndexLabel(row: u32, base: u32, st: RowState, flags: ptr<function, u32>) -> RowState {
  let label = labelIndices[row];
  var out = st;
  out.labelSum = 1.0;
  out.labelDot = 0.0;
  if (label < 0 || u32(label) >= params.classes) {
    *flags = *flags | FLAG_BAD_LABEL;
  } else {
    let e = base * CHUNK + u32(label);
    let sLabel = chunkLane(student[e / CHUNK], e % CHUNK);
    if (isMasked(sLabel)) {
      // the label on a column the student masks: CE_b = +Infinity (selected in finishRow)
      *flags = *flags | FLAG_CE_INF;
    } else {
      out.labelDot = sLabel - st.ms;
    }
  }
  return out;
}

// A row's merged state as statistics: the log-sums, KL_b from the centred sums, and the centre
// and E_p[x] the gradients use. Where the centred sums were abandoned (a centre beyond
// CENTRE_LIMIT), the direct KL_b around the centre c = E_p[δ], with E_p[x] = 0. The student's
// mass on the teacher's masked columns joins E_p[e^−x] here: e^mc · ZM.
fn rowStats(st: RowState, flags: u32) -> RowStats {
  let logZS = log(st.zs);
  let logZT = log(st.zt);
  // E_p[v] − E_p[u]: each term is relative to its own row maximum, so an offset between
  // student and teacher (a row shifted by 1e4) cancels before any rounding.
  let centre = (st.pv - st.pu) / st.zt;
  var rs = RowStats(st.ms, st.mt, log(st.z1), logZS, logZT, centre - logZT + logZS,
                    st.labelSum, flags, centre, 0.0);
  if (st.em >= 0.0) {
    rs.centre = st.mc;
    rs.meanX = st.ax / st.zt;
    let rg = select(st.rg, st.rg + st.em * st.zm, st.zm > 0.0);
    rs.kl = klFromMoments(rg / st.zt, rs.meanX);
  }
  return rs;
}


// Sweep 2 (only when a tape records the op): the row's gradients at upstream weight rowWeight,
// in the general form or the fast one (general: a constant at each call, "Fast rows").
fn writeGradients(row: u32, base: u32, col: u32, chunksPerRow: u32, rs: RowStats, w: f32,
                  general: bool) {
  var label = -1;
  if (!DENSE_LABELS) { label = labelIndices[row]; }
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
      gradStudent[base + c] = studentGradOutFor(w, studentGradFor(s, t, y, rs, general), rs, s);
    }
    if (WRITE_TEACHER_GRAD) {
      gradTeacher[base + c] = teacherGradOutFor(w, teacherGradFor(s, t, rs, general), rs, t);
    }
  }
}

// Sweep 1 over an invocation's share of a row (its chunks col, col + TILE_COLS, …). general
// (a constant at each call): the masks' selects and the flags of NaN, infinities and masks;
// otherwise the fast form, which notes (FLAG_NONFINITE) whether a chunk holds a logit that is
// not a finite number, in which case the row is swept again in the general form (dense labels'
// NaN is flagged in both forms).
fn sweepRow(base: u32, col: u32, chunksPerRow: u32, invT: f32, general: bool,
            flags: ptr<function, u32>) -> RowState {
  var st = emptyState();
  var c = col;
  // Pairs of chunks c and c + TILE_COLS (foldPair), then the last one alone if the count is odd.
  for (; c + TILE_COLS < chunksPerRow; c += 2u * TILE_COLS) {
    let s0 = student[base + c];
    let t0 = teacher[base + c];
    let s1 = student[base + c + TILE_COLS];
    let t1 = teacher[base + c + TILE_COLS];
    let y0 = chunkLabels(base + c, flags);
    let y1 = chunkLabels(base + c + TILE_COLS, flags);
    if (general) {
      let maskS0 = chunkMasked(s0);
      let maskT0 = chunkMasked(t0);
      let maskS1 = chunkMasked(s1);
      let maskT1 = chunkMasked(t1);
      flagChunk(s0, t0, y0, maskS0, maskT0, flags);
      flagChunk(s1, t1, y1, maskS1, maskT1, flags);
      st = foldPair(st, s0, t0, y0, s1, t1, y1, invT, maskS0, maskT0, maskS1, maskT1);
    } else {
      if (chunkNonFinite(s0) || chunkNonFinite(t0) || chunkNonFinite(s1) ||
          chunkNonFinite(t1)) {
        *flags = *flags | FLAG_NONFINITE;
      }
      let none = ChunkMask(false);
      st = foldPair(st, s0, t0, y0, s1, t1, y1, invT, none, none, none, none);
    }
  }
  if (c < chunksPerRow) {
    let s = student[base + c];
    let t = teacher[base + c];
    let y = chunkLabels(base + c, flags);
    if (general) {
      let maskS = chunkMasked(s);
      let maskT = chunkMasked(t);
      flagChunk(s, t, y, maskS, maskT, flags);
      st = foldChunk(st, s, t, y, invT, maskS, maskT);
    } else {
      if (chunkNonFinite(s) || chunkNonFinite(t)) { *flags = *flags | FLAG_NONFINITE; }
      st = foldChunk(st, s, t, y, invT, ChunkMask(false), ChunkMask(false));
    }
  }
  return st;
}

// A chunk's dense labels (0 with index labels), a NaN among them flagged.
fn chunkLabels(at: u32, flags: ptr<function, u32>) -> Chunk {
  if (!DENSE_LABELS) { return Chunk(0.0); }
  let y = denseLabels[at];
  if (chunkHasNan(y)) { *flags = *flags | FLAG_BAD_LABEL; }
  return y;
}

// The general form's flags of one chunk: NaN and +Infinity, label mass on a masked column, and
// a column where the divergence is infinite (FLAG_NONFINITE is already known: the row is in the
// general form because it has it).
fn flagChunk(s: Chunk, t: Chunk, y: Chunk, maskS: ChunkMask, maskT: ChunkMask,
             flags: ptr<function, u32>) {
  if (DENSE_LABELS) {
    // label mass where the student masks: CE_b = +Infinity (negative mass: unusable)
    if (any(maskS & (y > Chunk(0.0)))) { *flags = *flags | FLAG_CE_INF; }
    if (any(maskS & (y < Chunk(0.0)))) { *flags = *flags | FLAG_BAD_LABEL; }
  }
  if (chunkNanOrPosInf(s)) { *flags = *flags | FLAG_NAN | FLAG_STUDENT_NAN; }
  if (chunkNanOrPosInf(t)) { *flags = *flags | FLAG_NAN; }
  // a column where the divergence is infinite (forward KL: the student masks a column where
  // the teacher has mass): D_b = +Infinity
  if (divergenceInfinite(maskS, maskT)) { *flags = *flags | FLAG_KL_INF; }
}

// The row group's states and flags merged in a shared-memory tree (TILE_COLS > 1; called in
// uniform control flow): every invocation of the row gets the row's merged state and flags.
fn mergeRow(lid: u32, r: u32, col: u32, st: RowState, flags: ptr<function, u32>,
            invT: f32) -> RowState {
  sharedState[lid] = st;
  sharedFlags[lid] = *flags;
  workgroupBarrier();
  for (var stride = TILE_COLS / 2u; stride > 0u; stride = stride / 2u) {
    if (col < stride) {
      sharedState[lid] = mergeStates(sharedState[lid], sharedState[lid + stride], invT);
      sharedFlags[lid] = sharedFlags[lid] | sharedFlags[lid + stride];
    }
    workgroupBarrier();
  }
  let merged = sharedState[r * TILE_COLS];
  *flags = sharedFlags[r * TILE_COLS];
  // The next use writes these arrays; every invocation must have read its row's slot.
  workgroupBarrier();
  return merged;
}

// Whether any row of the workgroup has `bit` in its merged flags (every invocation holds its
// row's, after mergeRow), as a uniform value (called in uniform control flow; TILE_COLS > 1):
// a tree over the rows' slots (strides ≥ TILE_COLS: none when a workgroup holds one row).
fn anyRowFlag(lid: u32, flags: u32, bit: u32) -> bool {
  sharedFlags[lid] = flags & bit;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride >= TILE_COLS; stride = stride / 2u) {
    if (lid < stride) {
      sharedFlags[lid] = sharedFlags[lid] | sharedFlags[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) { sharedAnyFlag = sharedFlags[0]; }
  return workgroupUniformLoad(&sharedAnyFlag) != 0u;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tileRows = WORKGROUP_SIZE / TILE_COLS;
  let r = lid / TILE_COLS;
  let col = lid % TILE_COLS;
  let chunksPerRow = params.classes / CHUNK;
  let invT = params.invTemperature;
  // Local rows (of this chunk): `local` indexes the [·, C] bindings, `row` the per-row ones.
  var firstLocal = wg.y * tileRows;
  var rowStep = params.gridRows * tileRows;
  if (BATCH_IN_WORKGROUP) {
    firstLocal = 0u;
    rowStep = tileRows;
  }
  var lossAcc = 0.0;
  // NaN (1) and +Infinity (2) row losses, selected into the sum at the end (lossSpecial)
  var specials = 0u;
  // The rows' weight in the output: 1/B or 1, or 1/max(N, 1) over the counted rows.
  var rowWeight = params.rowWeight;
  if (IGNORE_INDEX && params.countRows != 0u &&
      (BATCH_IN_WORKGROUP || WRITE_STUDENT_GRAD || WRITE_TEACHER_GRAD)) {
    rowWeight = 1.0 / f32(max(countRows(lid), 1u));
  }

  // Every invocation of the workgroup runs the same number of iterations (the bound is
  // uniform), so the barriers below are reached in uniform control flow.
  for (var rowBase = firstLocal; rowBase < params.rows; rowBase += rowStep) {
    let local = rowBase + r;
    let rowActive = local < params.rows;
    let row = params.firstRow + local;
    let base = params.headChunks + local * chunksPerRow;

    var flags = 0u;
    let ignored = rowActive && isIgnored(row);
    if (ignored) { flags = FLAG_IGNORED; }
    var st = emptyState();
    if (rowActive && !ignored) {
      st = sweepRow(base, col, chunksPerRow, invT, false, &flags);
    }
    if (TILE_COLS > 1u) {
      st = mergeRow(lid, r, col, st, &flags, invT);
    }
    // Fast rows: the sweep above assumed every logit finite (no masks' selects, no flags of
    // NaN, infinities or masks). A row that holds a mask, NaN or infinity (FLAG_NONFINITE) is
    // swept again in the general form, its fast sums discarded: one extra pass for such rows
    // (with a workgroup per row group, the workgroup's other rows wait through it), none for
    // the others beyond anyRowFlag's barriers.
    let general = (flags & FLAG_NONFINITE) != 0u;
    if (TILE_COLS > 1u) {
      // (the second sweep's tree needs uniform control flow: taken when any row of the
      // workgroup needs it, each row keeping its first result unless it does)
      if (anyRowFlag(lid, flags, FLAG_NONFINITE)) {
        var again = 0u;
        var st2 = emptyState();
        if (general && rowActive && !ignored) {
          st2 = sweepRow(base, col, chunksPerRow, invT, true, &again);
        }
        st2 = mergeRow(lid, r, col, st2, &again, invT);
        if (general) {
          st = st2;
          flags = again | FLAG_NONFINITE;
        }
      }
    } else if (general) {
      flags = 0u;
      st = sweepRow(base, col, chunksPerRow, invT, true, &flags);
      flags = flags | FLAG_NONFINITE;
    }

    if (rowActive && !DENSE_LABELS && !ignored) {
      // Every invocation of the row group reads the label: the gradient sweep needs its flag too.
      st = withIndexLabel(row, base, st, &flags);
    }
    // A row masked everywhere, in either side, has no distribution: NaN.
    if (rowActive && !ignored && (st.z1 == 0.0 || st.zt == 0.0)) { flags = flags | FLAG_NAN; }
    if (rowActive && !ignored && st.z1 == 0.0) { flags = flags | FLAG_STUDENT_NAN; }
    var rs = rowStats(st, flags);
    if (divergenceNeedsSums()) {
      // Sweep 2 (reverse KL, JSD): the divergence's sums, now that log ZS and log ZT are known.
      var sums = emptySums();
      if (rowActive && !ignored) {
        for (var c = col; c < chunksPerRow; c += TILE_COLS) {
          sums = addSums(sums, student[base + c], teacher[base + c], rs);
        }
      }
      if (TILE_COLS > 1u) {
        sharedSums[lid] = sums;
        workgroupBarrier();
        for (var stride = TILE_COLS / 2u; stride > 0u; stride = stride / 2u) {
          if (col < stride) {
            sharedSums[lid] = mergeSums(sharedSums[lid], sharedSums[lid + stride]);
          }
          workgroupBarrier();
        }
        sums = sharedSums[r * TILE_COLS];
        workgroupBarrier();
      }
      rs = divergenceOfSums(rs, sums);
    }
    if (rowActive && col == 0u) {
      addRowLoss(row, finishRow(row, rs, st.labelDot, rowWeight), &lossAcc, &specials);
    }
    if (rowActive && (WRITE_STUDENT_GRAD || WRITE_TEACHER_GRAD)) {
      if (general) {
        writeGradients(row, base, col, chunksPerRow, rs, rowWeight, true);
      } else {
        writeGradients(row, base, col, chunksPerRow, rs, rowWeight, false);
      }
    }
  }

  if (BATCH_IN_WORKGROUP) {
    writeBatchLoss(lid, lossAcc, specials, rowWeight);
  }
}
