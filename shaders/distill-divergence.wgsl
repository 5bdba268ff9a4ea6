// distill-divergence.wgsl — the divergences of the soft term: the one place in the WGSL that
// knows them, as src/divergences.ts (DIVERGENCES) is the one place in the TypeScript. Prepended,
// as a whole file, after distill-common.wgsl to the forward and backward kernels; the override
// DIVERGENCE (the entry's `kernel.id` in src/divergences.ts) selects one at pipeline creation,
// so each divergence is its own specialisation and forward KL's is the code it always was.
// Adding a divergence: its id below, its branch in divergenceInfinite, elementTerms,
// softStudentGrad, softTeacherGrad and divergenceOfSums, and its entry in src/divergences.ts.
//
// Notation of distill-common.wgsl: u = (s − m_s)/T, v = (t − m_t)/T, q = softmax(s/T) =
// e^(u − log ZS), p = softmax(t/T) = e^(v − log ZT), −Infinity logits probability 0 (finite
// stand-ins, terms selected to 0).
//
//   0 'forward-kl'  D = KL(p ‖ q): one online sweep (distill-forward.wgsl, distill-common.wgsl).
//   1 'reverse-kl'  D = KL(q ‖ p)
//       ∂D/∂s = q (log q − log p − D) / T,   ∂D/∂t = (p − q) / T
//   2 'jsd'         M = β p + (1 − β) q,   D = β KL(p ‖ M) + (1 − β) KL(q ‖ M)
//       ∂D/∂s = (1 − β) q (log q − log M − KL(q ‖ M)) / T
//       ∂D/∂t = β p (log p − log M − KL(p ‖ M)) / T
//
// Reverse KL and the JSD are sums over the row once log ZS and log ZT are known: the forward
// kernel's first sweep (the online one, which finds the maxima and log-sums) is followed by a
// second sweep over the row (still in cache) that adds up the terms below, then, under a tape,
// by the gradient sweep. So these divergences read s and t twice without gradients (a second
// statistics sweep) and three times with them; forward KL reads them once and twice. (Reverse
// KL could be kept online instead, as forward KL is, with the roles of s and t swapped in the
// centred sums; the second sweep keeps one copy of that machinery and gives the terms exact
// normalisers. The dispatches are the same either way.)
//
// Each KL(w ‖ m) they need is kept as three sums over the row, in the cancellation-free form of
// distill-common.wgsl with x_c = log w_c − log m_c as computed (centre 0):
//   Σ w,   Σ w x,   Σ w g(x) + Σ_{w_c = 0} m_c       (g(x) = e^−x − 1 + x ≥ 0)
// KL = E_w[g(x)] − h(y) (klFromMoments): with normalised w and m, y = E_w[e^−x] − 1 is only the
// rounding of the normalisers, so KL is a sum of terms ≥ 0 at every temperature (no cancellation
// as T grows, KL ~ 1/T²), and an error in log ZS − log ZT (a constant in x) cancels: the
// identity KL = E_w[x] + log E_w[e^−x] holds for any constant in x, and y carries it. Each term
// w g(x) is w · gSeries(x) where |x| < 1, else m − w + w x with m computed as a probability
// (never w e^−x: no overflow, and mass that w lost to underflow is kept). The gradients use
// x − E_w[x] (= log w − log m − KL without a constant's error) and, for reverse KL's teacher,
// p − q = q · expm1(log p − log q) where that is below 1 in magnitude (no cancellation as T
// grows), else the plain difference.
// JSD: with r = log q − log p, where |r| ≤ 1 (p ≈ q), log p − log M = −log1p((1 − β) expm1(r))
// and log q − log M = −log1p(β expm1(−r)) (relative precision kept as T grows); elsewhere, with
// a = log β + log p, b = log(1 − β) + log q and c = b − a = log(1 − β) − log β + r,
// log M = max(a, b) + log1p(e^−|c|), so that log p − log M and log q − log M come from r and
// the constants, never from the larger log p and log q (log β and log(1 − β) given in float64,
// rounded once: LOG_BETA, LOG_ONE_MINUS_BETA; log1p by its series, log1pSeries).
//
// Masks (src/divergences.ts): a column masked on both sides adds nothing. Reverse KL: the
// student masks (q = 0 < p): the column adds its p to Σ w g (above), ∂/∂s = 0, ∂/∂t = p/T; the
// teacher masks where the student has mass (p = 0 < q): D = +Infinity (FLAG_KL_INF, set by
// selection), ∂/∂t = −q/T (its finite limit), ∂/∂s NaN where the student is unmasked and 0 where
// it masks (no limit). JSD: never infinite (M > 0 wherever p or q is); a one-sided mask adds M's
// mass to the other KL's sums, δ = −log β or −log(1 − β) on the unmasked side.
//
// Row statistics (distill-common.wgsl) of these divergences: kl holds D_b; centre reverse KL:
// log ZS − log ZT, the constant of x; JSD: E_p[log p − log M]; meanX reverse KL: E_q[x]; JSD:
// E_q[log q − log M]. Forward KL's are as distill-common.wgsl says.

override DIVERGENCE: u32 = 0u;
// 'jsd' only: β, log β and log(1 − β) (src/divergences.ts passes all three).
override BETA: f32 = 0.5;
override LOG_BETA: f32 = -0.6931472;
override LOG_ONE_MINUS_BETA: f32 = -0.6931472;

const DIVERGENCE_FORWARD_KL: u32 = 0u;
const DIVERGENCE_REVERSE_KL: u32 = 1u;
const DIVERGENCE_JSD: u32 = 2u;

// Whether the forward kernel sweeps the row a second time for the divergence's sums.
fn divergenceNeedsSums() -> bool {
  return DIVERGENCE != DIVERGENCE_FORWARD_KL;
}

// Whether the chunk makes D_b +Infinity: a column where the divergence's first argument has mass
// and its second none (forward KL: the student masks, the teacher does not; reverse KL: the
// other way round; the JSD: never).
fn divergenceInfinite(maskS: ChunkMask, maskT: ChunkMask) -> bool {
  if (DIVERGENCE == DIVERGENCE_REVERSE_KL) {
    return any(maskT & !maskS);
  }
  if (DIVERGENCE == DIVERGENCE_JSD) {
    return false;
  }
  return any(maskS & !maskT);
}

// log1p(z) for z in (−0.64, 1.72] (so |w| ≤ 0.47, w = z / (2 + z)): 2 atanh(w) = 2 w Σ_k w^2k /
// (2k + 1), k ≤ 11, truncation below 2e-9 relative.
fn log1pSeries(z: Chunk) -> Chunk {
  let w = z / (Chunk(2.0) + z);
  let w2 = w * w;
  var r = Chunk(1.0 / 23.0);
  r = Chunk(1.0 / 21.0) + w2 * r;
  r = Chunk(1.0 / 19.0) + w2 * r;
  r = Chunk(1.0 / 17.0) + w2 * r;
  r = Chunk(1.0 / 15.0) + w2 * r;
  r = Chunk(1.0 / 13.0) + w2 * r;
  r = Chunk(1.0 / 11.0) + w2 * r;
  r = Chunk(1.0 / 9.0) + w2 * r;
  r = Chunk(1.0 / 7.0) + w2 * r;
  r = Chunk(1.0 / 5.0) + w2 * r;
  r = Chunk(1.0 / 3.0) + w2 * r;
  r = Chunk(1.0) + w2 * r;
  return 2.0 * w * r;
}

// The tempered probabilities and log-probabilities of one chunk (stand-ins where masked).
struct Tempered {
  maskS: ChunkMask,
  maskT: ChunkMask,
  q: Chunk,
  p: Chunk,
  logQ: Chunk,
  logP: Chunk,
  // log q − log p, from u − v first (precise) and then the row constant log ZS − log ZT
  r: Chunk,
}

fn tempered(s: Chunk, t: Chunk, rs: RowStats) -> Tempered {
  let invT = params.invTemperature;
  let maskS = chunkMasked(s);
  let maskT = chunkMasked(t);
  let u = (select(s, Chunk(rs.ms), maskS) - Chunk(rs.ms)) * invT;
  let v = (select(t, Chunk(rs.mt), maskT) - Chunk(rs.mt)) * invT;
  let logQ = u - Chunk(rs.logZS);
  let logP = v - Chunk(rs.logZT);
  return Tempered(maskS, maskT, select(exp(logQ), Chunk(0.0), maskS),
                  select(exp(logP), Chunk(0.0), maskT), logQ, logP,
                  (u - v) - Chunk(rs.logZS - rs.logZT));
}

// One KL(w ‖ m)'s per-element terms: its weight w, x = log w − log m (0 where w masks) and
// w g(x) (m where w = 0: that column's share of E_w[e^−x]).
struct KlTerms {
  w: Chunk,
  x: Chunk,
  g: Chunk,
}

fn klTerms(w: Chunk, x: Chunk, m: Chunk, maskW: ChunkMask) -> KlTerms {
  let x0 = select(x, Chunk(0.0), maskW);
  let near = (abs(x0) < Chunk(1.0)) & !maskW;
  return KlTerms(w, x0, select(m - w + w * x0, w * gSeries(x0), near));
}

// The divergence's per-element terms: up to two KLs (the second unused by reverse KL).
struct ElementTerms {
  first: KlTerms,
  second: KlTerms,
}

fn elementTerms(e: Tempered) -> ElementTerms {
  if (DIVERGENCE == DIVERGENCE_JSD) {
    // δ_p = log p − log M, δ_q = log q − log M = δ_p + r
    let near = (abs(e.r) <= Chunk(1.0)) & !(e.maskS | e.maskT);
    let rn = select(Chunk(0.0), e.r, near);
    let deltaPNear = -log1pSeries((1.0 - BETA) * expm1Series(rn));
    let deltaQNear = -log1pSeries(BETA * expm1Series(-rn));
    // elsewhere, from c = b − a = log(1 − β) − log β + r (r, not the larger log p and log q):
    // c ≤ 0: log M = a + log1p(e^c); c > 0: log M = b + log1p(e^−c)
    let c = Chunk(LOG_ONE_MINUS_BETA - LOG_BETA) + select(e.r, Chunk(0.0), e.maskS | e.maskT);
    let l = log1pSeries(exp(-abs(c)));
    let aWins = c <= Chunk(0.0);
    var deltaP = select(-(Chunk(LOG_ONE_MINUS_BETA) + l) - e.r, -(Chunk(LOG_BETA) + l), aWins);
    var deltaQ = select(-(Chunk(LOG_ONE_MINUS_BETA) + l), -(Chunk(LOG_BETA) + l) + e.r, aWins);
    // a one-sided mask: M is the other side's term alone
    deltaP = select(select(deltaP, Chunk(-LOG_BETA), e.maskS), deltaPNear, near);
    deltaQ = select(select(deltaQ, Chunk(-LOG_ONE_MINUS_BETA), e.maskT), deltaQNear, near);
    // M from the side that has mass (the larger term where both have)
    let fromP = (aWins | e.maskS) & !e.maskT;
    let logM = select(e.logQ - deltaQ, e.logP - deltaP, fromP | near);
    let mass = select(exp(logM), Chunk(0.0), e.maskS & e.maskT);
    return ElementTerms(klTerms(e.p, deltaP, mass, e.maskT), klTerms(e.q, deltaQ, mass, e.maskS));
  }
  // reverse KL: KL(q ‖ p), x = log q − log p
  let none = KlTerms(Chunk(0.0), Chunk(0.0), Chunk(0.0));
  return ElementTerms(klTerms(e.q, e.r, e.p, e.maskS), none);
}

// The row sums of the two KLs' terms.
struct DivergenceSums {
  w1: f32,
  x1: f32,
  g1: f32,
  w2: f32,
  x2: f32,
  g2: f32,
}

fn emptySums() -> DivergenceSums {
  return DivergenceSums(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
}

fn addSums(a: DivergenceSums, s: Chunk, t: Chunk, rs: RowStats) -> DivergenceSums {
  let e = elementTerms(tempered(s, t, rs));
  return DivergenceSums(a.w1 + chunkSum(e.first.w), a.x1 + chunkSum(e.first.w * e.first.x),
                        a.g1 + chunkSum(e.first.g), a.w2 + chunkSum(e.second.w),
                        a.x2 + chunkSum(e.second.w * e.second.x), a.g2 + chunkSum(e.second.g));
}

fn mergeSums(a: DivergenceSums, b: DivergenceSums) -> DivergenceSums {
  return DivergenceSums(a.w1 + b.w1, a.x1 + b.x1, a.g1 + b.g1, a.w2 + b.w2, a.x2 + b.x2,
                        a.g2 + b.g2);
}

// The row statistics from the sums: D_b (as kl) and the means the gradients use.
fn divergenceOfSums(rs0: RowStats, sums: DivergenceSums) -> RowStats {
  var rs = rs0;
  let meanX1 = sums.x1 / sums.w1;
  let kl1 = klFromMoments(sums.g1 / sums.w1, meanX1);
  if (DIVERGENCE == DIVERGENCE_JSD) {
    let meanX2 = sums.x2 / sums.w2;
    let kl2 = klFromMoments(sums.g2 / sums.w2, meanX2);
    rs.kl = BETA * kl1 + (1.0 - BETA) * kl2;
    rs.centre = meanX1;
    rs.meanX = meanX2;
  } else {
    rs.kl = kl1;
    rs.centre = rs.logZS - rs.logZT;
    rs.meanX = meanX1;
  }
  return rs;
}

// ∂D/∂s of one chunk, without the factor 1/T.
fn softStudentGrad(e: Tempered, rs: RowStats) -> Chunk {
  let terms = elementTerms(e);
  if (DIVERGENCE == DIVERGENCE_JSD) {
    return select((1.0 - BETA) * (terms.second.w * (terms.second.x - Chunk(rs.meanX))),
                  Chunk(0.0), e.maskS);
  }
  return select(terms.first.w * (terms.first.x - Chunk(rs.meanX)), Chunk(0.0), e.maskS);
}

// ∂D/∂t of one chunk, without the factor 1/T.
fn softTeacherGrad(e: Tempered, rs: RowStats) -> Chunk {
  if (DIVERGENCE == DIVERGENCE_JSD) {
    let terms = elementTerms(e);
    return select(BETA * (terms.first.w * (terms.first.x - Chunk(rs.centre))), Chunk(0.0),
                  e.maskT);
  }
  // p − q = q expm1(log p − log q), log p − log q = E_q[x] − x − D without x's constant error
  let logRatio = (Chunk(rs.meanX) - e.r) - Chunk(rs.kl);
  let near = select((abs(logRatio) < Chunk(1.0)) & !(e.maskS | e.maskT), ChunkMask(false),
                    (rs.flags & FLAG_KL_INF) != 0u);
  return select(e.p - e.q, e.q * expm1Series(logRatio), near);
}

// ∂ℓ/∂s of one chunk at unit upstream weight (callers multiply by w_b): forward KL's is
// studentGradChunk (distill-common.wgsl); the others α (σ Σ y − y) + (1 − α)(k/T) ∂D/∂s · T.
// general: false for a row without FLAG_NONFINITE (its logits all finite, or an ignored row,
// whose gradients are selected to 0): forward KL's masks are then constant false and their
// selects fold away (the forward kernel passes a constant).
fn studentGradFor(s: Chunk, t: Chunk, y: Chunk, rs: RowStats, general: bool) -> Chunk {
  if (DIVERGENCE == DIVERGENCE_FORWARD_KL) {
    if (general) {
      return studentGradChunk(s, t, y, rs, chunkMasked(s), chunkMasked(t));
    }
    return studentGradChunk(s, t, y, rs, ChunkMask(false), ChunkMask(false));
  }
  let e = tempered(s, t, rs);
  let d = select(s, Chunk(rs.ms), e.maskS) - Chunk(rs.ms);
  let sigma = select(exp(d - Chunk(rs.logZ1)), Chunk(0.0), e.maskS);
  return params.alpha * (sigma * rs.labelSum - y) +
         (params.klWeight * params.invTemperature) * softStudentGrad(e, rs);
}

fn teacherGradFor(s: Chunk, t: Chunk, rs: RowStats, general: bool) -> Chunk {
  if (DIVERGENCE == DIVERGENCE_FORWARD_KL) {
    if (general) {
      return teacherGradChunk(s, t, rs, chunkMasked(s), chunkMasked(t));
    }
    return teacherGradChunk(s, t, rs, ChunkMask(false), ChunkMask(false));
  }
  // (1 − α)(k/T) applied last, as in teacherGradChunk: the product may be below the smallest
  // normal float where the factors alone are not)
  return softTeacherGrad(tempered(s, t, rs), rs) * (params.klWeight * params.invTemperature);
}

// The gradient chunks weighted, or NaN / 0 where the row is flagged (distill-common.wgsl:
// studentGradOut, teacherGradOut). Where D_b = +Infinity (and weighs) the side whose divergence
// it is has no gradient limit: NaN where that side has mass, 0 where it masks (forward KL: the
// teacher's; reverse KL: the student's).
fn studentGradOutFor(w: f32, g: Chunk, rs: RowStats, s: Chunk) -> Chunk {
  if (DIVERGENCE == DIVERGENCE_REVERSE_KL) {
    let undefinedHere = !chunkMasked(s) & ChunkMask(params.klWeight != 0.0) &
                        ChunkMask((rs.flags & FLAG_KL_INF) != 0u);
    var out = select(w * g, Chunk(quietNan()), undefinedHere);
    out = select(out, Chunk(quietNan()), (rs.flags & (FLAG_NAN | FLAG_BAD_LABEL)) != 0u);
    return select(out, Chunk(0.0), (rs.flags & FLAG_IGNORED) != 0u);
  }
  return studentGradOut(w, g, rs);
}

fn teacherGradOutFor(w: f32, g: Chunk, rs: RowStats, t: Chunk) -> Chunk {
  if (DIVERGENCE == DIVERGENCE_FORWARD_KL) {
    return teacherGradOut(w, g, rs, t);
  }
  let out = select(w * g, Chunk(quietNan()), (rs.flags & FLAG_NAN) != 0u);
  return select(out, Chunk(0.0), (rs.flags & FLAG_IGNORED) != 0u);
}
