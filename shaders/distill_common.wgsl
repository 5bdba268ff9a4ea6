// distill_common.wgsl — declarations shared by every distillation kernel; prepended to each
// kernel's source (whole-file concatenation, never splicing inside a function), after the
// chunk file (distill_chunk_vec4.wgsl or distill_chunk_scalar.wgsl).
//
// Maths, per row b, with s = student logits, t = teacher logits, y = labels, T = temperature,
// m_s = max_c s_c, m_t = max_c t_c, d_c = s_c − m_s, u_c = d_c / T, v_c = (t_c − m_t) / T:
//   Z1 = Σ_c exp(d_c)          ZS = Σ_c exp(u_c)          ZT = Σ_c exp(v_c)
//   PV = Σ_c exp(v_c) · v_c    PU = Σ_c exp(v_c) · u_c
//   CE_b = Σ_c y_c · log Z1 − Σ_c y_c d_c                  (= −Σ y log softmax(s))
//   KL_b = Σ_c p_c (log p_c − log q_c) = (PV − PU) / ZT − log ZT + log ZS
//   ℓ_b  = α · CE_b + (1 − α) · k · KL_b                   (k = T² or 1)
// Everything is taken relative to each row's own maxima (m_s for s, m_t for t), so no exponent
// overflows, and a large offset of either row (shifted by 1e4) cancels before any rounding.
//
// Row statistics (8 floats per row), written by the forward kernel, read by the backward one:
//   [m_s, m_t, log Z1, log ZS, log ZT, KL_b, Σ_c y_c, flags]
// flags (stored as a float): 1 = the row's logits hold a NaN (loss and both gradients NaN);
// 2 = its labels are unusable, an integer label outside [0, C) or a NaN in dense labels (loss
// and the student's gradient NaN; the teacher's gradient does not depend on the labels).

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
}

const STATS_STRIDE: u32 = 8u;
const FLAG_NAN: u32 = 1u;
const FLAG_BAD_LABEL: u32 = 2u;
// The running maxima start here rather than at −∞, which WGSL lets an implementation assume
// away; logits are expected above it.
const LOWEST_LOGIT: f32 = -1.0e30;

// A runtime (not const) bit pattern: WGSL rejects a NaN constant expression.
fn quietNan() -> f32 {
  var bits = 0x7fc00000u;
  return bitcast<f32>(bits);
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
}

// Gradients of one chunk at unit upstream weight (callers multiply by w_b), with
// σ = exp(d − log Z1), q = exp(u − log ZS), p = exp(v − log ZT):
//   ∂ℓ/∂s = α (σ · Σ y − y) + (1 − α) (k / T) (q − p)
//   ∂ℓ/∂t = (1 − α) (k / T) · p (log p − log q − KL)
// Three exponentials for the student's gradient, two for the teacher's (shared when both are
// written: the compiler sees the same pure expressions).
fn studentGradChunk(s: Chunk, t: Chunk, y: Chunk, rs: RowStats) -> Chunk {
  let invT = params.invTemperature;
  let d = s - Chunk(rs.ms);
  let q = exp(d * invT - Chunk(rs.logZS));
  let p = exp((t - Chunk(rs.mt)) * invT - Chunk(rs.logZT));
  let sigma = exp(d - Chunk(rs.logZ1));
  return params.alpha * (sigma * rs.labelSum - y) + (params.klWeight * invT) * (q - p);
}

fn teacherGradChunk(s: Chunk, t: Chunk, rs: RowStats) -> Chunk {
  let invT = params.invTemperature;
  let logQ = (s - Chunk(rs.ms)) * invT - Chunk(rs.logZS);
  let logP = (t - Chunk(rs.mt)) * invT - Chunk(rs.logZT);
  return (params.klWeight * invT) * exp(logP) * (logP - logQ - Chunk(rs.kl));
}

// A row's gradient chunk, weighted, or NaN where the row is flagged: NaN for both gradients
// when its logits hold a NaN, for the student's when its labels are unusable. The NaN is
// selected, not computed: WGSL lets an implementation assume NaN never arises in arithmetic.
fn studentGradOut(w: f32, g: Chunk, rs: RowStats) -> Chunk {
  return select(w * g, Chunk(quietNan()), (rs.flags & (FLAG_NAN | FLAG_BAD_LABEL)) != 0u);
}

fn teacherGradOut(w: f32, g: Chunk, rs: RowStats) -> Chunk {
  return select(w * g, Chunk(quietNan()), (rs.flags & FLAG_NAN) != 0u);
}
