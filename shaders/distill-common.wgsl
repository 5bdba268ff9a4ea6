// distill-common.wgsl — declarations shared by every distillation kernel; prepended to each
// kernel's source (whole-file concatenation, never splicing inside a function), after the
// chunk file (distill-chunk-vec4.wgsl or distill-chunk-scalar.wgsl).
//
// Maths, per row b, with s = student logits, t = teacher logits, y = labels, T = temperature,
// m_s = max_c s_c, m_t = max_c t_c, d_c = s_c − m_s, u_c = d_c / T, v_c = (t_c − m_t) / T:
//   Z1 = Σ_c exp(d_c)          ZS = Σ_c exp(u_c)          ZT = Σ_c exp(v_c)
//   PV = Σ_c exp(v_c) · v_c    PU = Σ_c exp(v_c) · u_c
//   CE_b = Σ_c y_c · log Z1 − Σ_c y_c d_c                  (= −Σ y log softmax(s))
//   ℓ_b  = α · CE_b + (1 − α) · k · KL_b                   (k = T² or 1)
// Everything is taken relative to each row's own maxima (m_s for s, m_t for t), so no exponent
// overflows, and a large offset of either row (shifted by 1e4) cancels before any rounding.
//
// KL without cancellation. The direct form KL_b = (PV − PU)/ZT − log ZT + log ZS subtracts
// log-sums of size log C to get a KL that shrinks like 1/T²: at T = 1e4 it is all rounding
// (T² magnifies it). Instead, with p = softmax(t/T), δ_c = v_c − u_c (= log p_c − log q_c up
// to a per-row constant), any centre c and x_c = δ_c − c:
//   KL_b = E_p[x] + log E_p[e^−x] = E_p[g(x)] − h(y),   y = E_p[g(x)] − E_p[x] = E_p[e^−x] − 1,
//   g(x) = e^−x − 1 + x ≥ 0,   h(y) = y − log(1 + y) ≥ 0.
// With a centre c within a quarter standard deviation of E_p[δ], |E_p[x]| is small, every term
// of Σ p g(x) is ≥ 0 (no cancellation in the sum), g is a series where |x| < 1 and h a series
// in y/(2 + y) where y ≤ 1: KL keeps its relative precision at every temperature (h(y) ≈ y²/2
// takes at most 1/16 of E_p[g]). For y > 1 (low T) KL = E_p[x] + log(1 + y) is already well
// conditioned. The forward kernel keeps Σ e^v x and Σ e^v g(x) in its one sweep, around a
// centre that follows the running mean of δ. Where the centre would pass CENTRE_LIMIT, p e^−x
// could overflow; KL is then large, the direct form accurate, and the row uses it (with c its
// centre and E_p[x] = 0 for the gradients).
// Gradients use the same quantities: log p − log q − KL = x − E_p[x], and
// q − p = p · expm1(E_p[x] − x − KL) (a series where the argument is below 1 in magnitude).
//
// Row statistics (12 floats per row: struct StoredRowStats below), written by the forward
// kernel, read by the backward one and (returnComponents) by distill-components.wgsl:
//   [m_s, m_t, log Z1, log ZS, log ZT, KL_b, Σ_c y_c, flags, c, E_p[x], w_b, CE_b]
// w_b: the row's weight in the op's output (rowWeight; 1/max(N, 1) over the counted rows N for
// 'mean' with an ignore index; 0 for an ignored row; counted only when the forward kernel
// writes gradients or reduces the batch itself).
// (The forward KL kernels' layout; with another divergence, KL_b, c and E_p[x] hold its D_b and
// the means its gradients use: shaders/distill-divergence.wgsl, "Row statistics".)
// KL_b and CE_b are the row's component values as the reference defines them (src/reference.ts):
// 0 for an ignored row; KL_b NaN for flag 1, +Infinity for flag 8; CE_b NaN for flags 2 and 32,
// +Infinity for flag 16 (selected, never computed from infinities).
// flags (stored as a float): 1 = the row's logits hold a NaN (loss and both gradients NaN);
// 2 = its labels are unusable, an integer label outside [0, C) or a NaN in dense labels (loss
// and the student's gradient NaN; the teacher's gradient does not depend on the labels);
// 4 = its label is the ignore index: loss, components and both gradients 0 (whatever its
// logits hold), and not counted by 'mean'; 8 = forward KL is +Infinity (the student masks a
// column where the teacher does not); 16 = CE is +Infinity (label mass on a column the student
// masks). Flag 1 also marks +Infinity logits and a row masked everywhere in either side;
// 32 = the student's side of flag 1 alone (a NaN or +Infinity student logit, or a student row
// masked everywhere): CE_b is NaN (a NaN teacher row leaves CE_b, the hard component, finite);
// 64 = the row holds a logit that is not a finite number (a mask, NaN or infinity): its sweeps
// take the general form, with the masks' selects (distill-forward.wgsl, "Fast rows"). An
// ignored row is never swept and never has it: its gradients are selected to 0 whatever the
// fast form computes from its logits.
//
// −Infinity logits (masks, e.g. a padded vocabulary) are probability 0. They are recognised by
// their bit pattern as they are read (chunkMasked), never through arithmetic on infinities,
// which WGSL lets an implementation assume away: every sum and product below runs on a finite
// stand-in (the row maximum, so d = u = v = 0 there) and each term of a masked element is
// selected to 0 (σ, q where the student masks; p, e^v and its KL terms where the teacher does).
// With M_t the teacher-masked columns (student unmasked there), every identity above holds with
// sums over the unmasked columns except E_p[e^−x] = Σ_all q e^c, which keeps the student's mass
// on M_t: Σ e^v g(x) gains e^c · ZM, ZM = Σ_{M_t} e^u (kept as a sum of its own, next to ZS).
// Per column: masked in both: nothing in any sum, both gradients exactly 0; teacher only: p = 0,
// ∂/∂s = (1 − α)(k/T) q + α(…), ∂/∂t = 0; student only (teacher mass there): KL_b = +Infinity
// (flag 8, set by selection) with ∂/∂s = (1 − α)(k/T)(q − p) + α(…) (its finite limit) and
// ∂/∂t NaN where the teacher is unmasked, 0 where masked (no limit: src/divergences.ts); a zero
// weight drops an infinite term (α = 0 for CE, (1 − α) k = 0 for KL), as the reference does.
//
// ignoreIndex and 'mean': N, the number of rows not ignored, is counted on the GPU by each
// kernel that needs it from the int32 labels (bound whole): the reduction kernel, and the
// forward kernel's workgroups when they write gradients or reduce the batch themselves (each
// reads all B labels: B/WORKGROUP_SIZE loads per invocation, plus a tree; distill-rows.wgsl;
// such a grid is capped at 1024 workgroups, so the count costs at most 1024 · B reads). 'mean' is then
// Σ ℓ_b / max(N, 1): a batch of padding only is 0 with zero gradients, not 0/0.

struct Params {
  batch: u32,
  classes: u32,
  alpha: f32,
  invTemperature: f32,
  // (1 − α) · k: the weight of KL_b in ℓ_b.
  klWeight: f32,
  // 1/B for 'mean', 1 for 'sum' and 'none': the weight of ℓ_b in the op's output.
  rowWeight: f32,
  // Backward only: 1 when dy has one entry per row ('none'), 0 when it is a scalar.
  dyPerRow: u32,
  // Workgroups along y of the dispatch grid: rows are visited in steps of gridRows · TILE_ROWS.
  gridRows: u32,
  // Row chunks (inputs larger than one storage binding; see "Row chunks" below). The rows of
  // this dispatch are firstRow … firstRow + rows − 1 of the batch; in every [rows, C] binding
  // (logits, dense labels, gradients) row firstRow + i starts at Chunk headChunks + i · C/CHUNK.
  firstRow: u32,
  rows: u32,
  headChunks: u32,
  // ignoreIndex (IGNORE_INDEX kernels, int32 labels): rows whose label equals it are ignored.
  ignoreIndex: i32,
  // 1 when rowWeight is 1/N over the counted rows N ('mean' with IGNORE_INDEX): the kernels
  // count N themselves (no read-back), rowWeight is then unused; 0 otherwise.
  countRows: u32,
  // k (T² under temperatureSquared, else 1): softLoss_b = k · KL_b (returnComponents).
  klFactor: f32,
}

// Row chunks. WebGPU caps one storage binding at maxStorageBufferBindingSize (128 MiB by
// default: 128 rows of 262,144 classes) and requires a binding's byte offset to be a multiple
// of minStorageBufferOffsetAlignment (A, at most 256). Larger inputs are dispatched in chunks
// of whole rows over the same buffers (no copies): each [rows, C] array is bound from the
// aligned offset o = ⌊4 · C · firstRow / A⌋ · A at or before the chunk's first row, so that
// row starts headChunks = (4 · C · firstRow − o) / (4 · CHUNK) Chunks into the binding (< A/4
// floats; a whole number of vec4s when C % 4 == 0, since 16 divides both 4C · firstRow and o).
// When C's row size is a multiple of A (C % 64 == 0) every head is 0. The chunk's last row
// ends its binding. Per-row arrays (labels, losses, statistics, dy) are bound whole and indexed
// by the global row. Inputs that fit one binding are a single chunk: firstRow = 0,
// rows = batch, headChunks = 0.

const FLAG_NAN: u32 = 1u;
const FLAG_BAD_LABEL: u32 = 2u;
const FLAG_IGNORED: u32 = 4u;
const FLAG_KL_INF: u32 = 8u;
const FLAG_CE_INF: u32 = 16u;
const FLAG_STUDENT_NAN: u32 = 32u;
const FLAG_NONFINITE: u32 = 64u;
// The running maxima start here rather than at −∞, which WGSL lets an implementation assume
// away; logits are expected above it.
const LOWEST_LOGIT: f32 = -1.0e30;
// Above this centre the KL refinement could overflow (p e^−x ≤ e^c); see the maths above.
const CENTRE_LIMIT: f32 = 60.0;

// A runtime (not const) bit pattern: WGSL rejects a NaN constant expression.
fn quietNan() -> f32 {
  var bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}

fn positiveInfinity() -> f32 {
  var bits = 0x7f800000u;
  return bitcast<f32>(bits);
}

// Whether a scalar read from memory is −Infinity (a mask), by its bits.
fn isMasked(x: f32) -> bool {
  return bitcast<u32>(x) == 0xff800000u;
}

// A row loss as a batch sum sees it: 1 for NaN, 2 for +Infinity, 0 for a finite value. Sums
// add the finite losses only and select NaN / +Infinity at the end (no arithmetic on them).
fn lossSpecial(x: f32) -> u32 {
  let bits = bitcast<u32>(x) & 0x7fffffffu;
  return select(select(0u, 2u, bits == 0x7f800000u), 1u, bits > 0x7f800000u);
}

// The reduced loss from a finite sum and the OR of the rows' lossSpecial: NaN wins over +Inf.
fn withSpecials(sum: f32, specials: u32) -> f32 {
  let inf = select(sum, positiveInfinity(), (specials & 2u) != 0u);
  return select(inf, quietNan(), (specials & 1u) != 0u);
}

// A row's statistics as the gradient formulas need them.
struct RowStats {
  ms: f32,
  mt: f32,
  logZ1: f32,
  logZS: f32,
  logZT: f32,
  kl: f32,
  labelSum: f32,
  flags: u32,
  // The centre the KL sums were kept around (within ¼ σ of E_p[δ]), and E_p[x] = E_p[δ] − centre.
  centre: f32,
  meanX: f32,
}

// A row's statistics as stored, in the layout above: every kernel binds the statistics as
// array<StoredRowStats> and moves whole rows (f32 fields only: 48 bytes a row, no padding;
// ROW_STATS_WIDTH in src/kernels/names.ts counts them).
struct StoredRowStats {
  ms: f32,
  mt: f32,
  logZ1: f32,
  logZS: f32,
  logZT: f32,
  // KL_b (or D_b) as reported: 0, NaN or +Infinity already selected (finishRow)
  kl: f32,
  labelSum: f32,
  // the flags as a float (exact: they stay far below 2^24)
  flags: f32,
  centre: f32,
  meanX: f32,
  // w_b, the row's weight in the op's output
  weight: f32,
  // CE_b, the hard component
  ce: f32,
}

// The statistics the gradient formulas need, from a stored row.
fn loadRowStats(stored: StoredRowStats) -> RowStats {
  return RowStats(stored.ms, stored.mt, stored.logZ1, stored.logZS, stored.logZT, stored.kl,
                  stored.labelSum, u32(stored.flags), stored.centre, stored.meanX);
}

// A row as stored: rs, with the reported KL_b and CE_b and the row's weight w_b.
fn storeRowStats(rs: RowStats, kl: f32, weight: f32, ce: f32) -> StoredRowStats {
  return StoredRowStats(rs.ms, rs.mt, rs.logZ1, rs.logZS, rs.logZT, kl, rs.labelSum,
                        f32(rs.flags), rs.centre, rs.meanX, weight, ce);
}

// g(x) = e^−x − 1 + x for |x| < 1: x² Σ_{k=0..9} (−x)^k / (k + 2)!, truncation below
// x^12/12! (relative 4e-9 of g at |x| = 1). Horner, every coefficient exact to 1 ulp.
fn gSeries(x: Chunk) -> Chunk {
  var r = Chunk(1.0 / 39916800.0);
  r = Chunk(1.0 / 3628800.0) - x * r;
  r = Chunk(1.0 / 362880.0) - x * r;
  r = Chunk(1.0 / 40320.0) - x * r;
  r = Chunk(1.0 / 5040.0) - x * r;
  r = Chunk(1.0 / 720.0) - x * r;
  r = Chunk(1.0 / 120.0) - x * r;
  r = Chunk(1.0 / 24.0) - x * r;
  r = Chunk(1.0 / 6.0) - x * r;
  r = Chunk(0.5) - x * r;
  return x * x * r;
}

// expm1(z) = e^z − 1 for |z| < 1: z Σ_{k=0..9} z^k / (k + 1)!, truncation below z^11/11!.
fn expm1Series(z: Chunk) -> Chunk {
  var r = Chunk(1.0 / 3628800.0);
  r = Chunk(1.0 / 362880.0) + z * r;
  r = Chunk(1.0 / 40320.0) + z * r;
  r = Chunk(1.0 / 5040.0) + z * r;
  r = Chunk(1.0 / 720.0) + z * r;
  r = Chunk(1.0 / 120.0) + z * r;
  r = Chunk(1.0 / 24.0) + z * r;
  r = Chunk(1.0 / 6.0) + z * r;
  r = Chunk(0.5) + z * r;
  r = Chunk(1.0) + z * r;
  return z * r;
}

// KL_b from E_p[g(x)] and E_p[x] (see the maths above); h(y) = y − log(1 + y) by the series
// h = y z − 2 z³ (1/3 + z²/5 + …), z = y / (2 + y), |z| ≤ 1/3, truncation below z^15/15.
fn klFromMoments(meanG: f32, meanX: f32) -> f32 {
  let y = meanG - meanX;
  if (y > 1.0) {
    return meanX + log(1.0 + y);
  }
  let z = y / (2.0 + y);
  let z2 = z * z;
  var r = 1.0 / 13.0;
  r = 1.0 / 11.0 + z2 * r;
  r = 1.0 / 9.0 + z2 * r;
  r = 1.0 / 7.0 + z2 * r;
  r = 1.0 / 5.0 + z2 * r;
  r = 1.0 / 3.0 + z2 * r;
  let h = y * z - 2.0 * z * z2 * r;
  return meanG - h;
}

// Gradients of one chunk at unit upstream weight (callers multiply by w_b), with
// σ = exp(d − log Z1), q = exp(u − log ZS), p = exp(v − log ZT), x = (v − u) − c:
//   ∂ℓ/∂s = α (σ · Σ y − y) + (1 − α) (k / T) (q − p)
//   ∂ℓ/∂t = (1 − α) (k / T) · p (log p − log q − KL) = (1 − α) (k / T) · p (x − E_p[x])
// q − p = p · expm1(E_p[x] − x − KL) where that argument (log q − log p) is below 1 in
// magnitude (q and p close: high T), else the plain difference (no cancellation when q/p is
// beyond e^±1). Two exponentials for the student's gradient where every lane of the chunk is
// near (σ and p: q is needed only for the plain difference), three elsewhere; one for the
// teacher's (p is shared when both are written: the compiler sees the same pure expressions).
// maskS, maskT: chunkMasked of s and t, or constant false for a fast row (no FLAG_NONFINITE;
// the selects then fold away).
fn studentGradChunk(s: Chunk, t: Chunk, y: Chunk, rs: RowStats, maskS: ChunkMask,
                    maskT: ChunkMask) -> Chunk {
  let invT = params.invTemperature;
  // masked logits stand in as the row maxima (finite arithmetic; their terms are selected away)
  let d = select(s, Chunk(rs.ms), maskS) - Chunk(rs.ms);
  let u = d * invT;
  let v = (select(t, Chunk(rs.mt), maskT) - Chunk(rs.mt)) * invT;
  let p = select(exp(v - Chunk(rs.logZT)), Chunk(0.0), maskT);
  let logRatio = (Chunk(rs.meanX) - ((v - u) - Chunk(rs.centre))) - Chunk(rs.kl);
  // (the series only where both are unmasked and KL_b finite: q − p is exact elsewhere)
  let near = select((abs(logRatio) < Chunk(1.0)) & !(maskS | maskT), ChunkMask(false),
                    (rs.flags & FLAG_KL_INF) != 0u);
  var qMinusP = p * expm1Series(logRatio);
  if (!all(near)) {
    let q = select(exp(u - Chunk(rs.logZS)), Chunk(0.0), maskS);
    qMinusP = select(q - p, qMinusP, near);
  }
  let sigma = select(exp(d - Chunk(rs.logZ1)), Chunk(0.0), maskS);
  return params.alpha * (sigma * rs.labelSum - y) + (params.klWeight * invT) * qMinusP;
}

fn teacherGradChunk(s: Chunk, t: Chunk, rs: RowStats, maskS: ChunkMask,
                    maskT: ChunkMask) -> Chunk {
  let invT = params.invTemperature;
  let u = (select(s, Chunk(rs.ms), maskS) - Chunk(rs.ms)) * invT;
  let v = (select(t, Chunk(rs.mt), maskT) - Chunk(rs.mt)) * invT;
  let p = exp(v - Chunk(rs.logZT));
  let x = (v - u) - Chunk(rs.centre);
  // p (x − E_p[x]) first: (1 − α)(k/T) p alone can fall below the smallest normal float (and
  // be flushed to 0) where the whole product does not.
  return select((p * (x - Chunk(rs.meanX))) * (params.klWeight * invT), Chunk(0.0), maskT);
}

// A row's gradient chunk, weighted, or NaN where the row is flagged: NaN for both gradients
// when its logits hold a NaN, for the student's when its labels are unusable. The NaN is
// selected, not computed: WGSL lets an implementation assume NaN never arises in arithmetic.
// An ignored row's gradients are 0, selected too (its logits may hold NaN).
fn studentGradOut(w: f32, g: Chunk, rs: RowStats) -> Chunk {
  let out = select(w * g, Chunk(quietNan()), (rs.flags & (FLAG_NAN | FLAG_BAD_LABEL)) != 0u);
  return select(out, Chunk(0.0), (rs.flags & FLAG_IGNORED) != 0u);
}

// Where KL_b is +Infinity (and weighs: (1 − α) k ≠ 0) the teacher's gradient has no limit: NaN
// where the teacher is unmasked, 0 where it masks (t: the chunk's teacher logits).
fn teacherGradOut(w: f32, g: Chunk, rs: RowStats, t: Chunk) -> Chunk {
  let undefinedHere = select(Chunk(0.0), Chunk(quietNan()),
                             !chunkMasked(t) & ChunkMask(params.klWeight != 0.0));
  var out = select(w * g, undefinedHere, (rs.flags & FLAG_KL_INF) != 0u);
  out = select(out, Chunk(quietNan()), (rs.flags & FLAG_NAN) != 0u);
  return select(out, Chunk(0.0), (rs.flags & FLAG_IGNORED) != 0u);
}
