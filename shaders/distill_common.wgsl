// distill_common.wgsl — declarations shared by every distillation kernel; prepended to each
// kernel's source (whole-file concatenation, never splicing inside a function), after the
// chunk file (distill_chunk_vec4.wgsl or distill_chunk_scalar.wgsl).
//
// Maths, per row b, with s = student logits, t = teacher logits, y = labels, T = temperature,
// m_s = max_c s_c, m_t = max_c t_c, d_c = s_c − m_s, u_c = d_c / T, v_c = (t_c − m_t) / T:
//   Z1 = Σ_c exp(d_c)          ZS = Σ_c exp(u_c)          ZT = Σ_c exp(v_c)
//   A  = Σ_c exp(v_c) · (t_c − s_c) / T
//   CE_b = Σ_c y_c · log Z1 − Σ_c y_c d_c                  (= −Σ y log softmax(s))
//   KL_b = Σ_c p_c (log p_c − log q_c) = A / ZT − (m_t − m_s) / T − log ZT + log ZS
//   ℓ_b  = α · CE_b + (1 − α) · k · KL_b                   (k = T² or 1)
// Everything is taken relative to the row maxima, so no exponent overflows, and a large
// common part of the logits (a row shifted by 1e4) cancels before any rounding.
//
// Row statistics (8 floats per row), written by the forward kernel, read by the backward one:
//   [m_s, m_t, log Z1, log ZS, log ZT, KL_b, Σ_c y_c, flags]
// flags (stored as a float): 1 = the row holds a NaN (logits or dense labels),
// 2 = an integer label is outside [0, C); both make the row's loss NaN.

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
