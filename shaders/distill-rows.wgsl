// distill-rows.wgsl — what the kernels that finish rows themselves (distill-forward.wgsl,
// distill-sparse.wgsl) share: ignored rows and their count, a row's loss and statistics
// (finishRow), and the batch's loss when one workgroup reduces it (BATCH_IN_WORKGROUP).
// Prepended to the kernel's own file, which declares what these use: labelIndices (i32, the
// whole batch), params, losses, stats, the override constants IGNORE_INDEX, WORKGROUP_SIZE and
// BATCH_IN_WORKGROUP, and var<workgroup> sharedCount: array<u32, WORKGROUP_SIZE>, sharedLoss:
// array<f32, WORKGROUP_SIZE> and sharedFlags: array<u32, WORKGROUP_SIZE>.
//
// N, the rows not ignored ('mean' with an ignore index divides by max(N, 1)), is counted by
// every workgroup that needs it from the int32 labels: B / WORKGROUP_SIZE loads per invocation
// plus a tree. The grid of such a dispatch is capped (src/kernels/webgpu/distill-webgpu.ts,
// COUNTING_MAX_WORKGROUPS), so a batch costs at most that many times B label reads, not B².

// Whether row `row` (global) is ignored: its int32 label is the ignore index.
fn isIgnored(row: u32) -> bool {
  return IGNORE_INDEX && labelIndices[row] == params.ignoreIndex;
}

// N, the rows of the whole batch not ignored, counted by the workgroup (called in uniform
// control flow by every invocation).
fn countRows(lid: u32) -> u32 {
  var n = 0u;
  for (var b = lid; b < params.batch; b += WORKGROUP_SIZE) {
    n += select(1u, 0u, isIgnored(b));
  }
  sharedCount[lid] = n;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      sharedCount[lid] += sharedCount[lid + stride];
    }
    workgroupBarrier();
  }
  let total = sharedCount[0];
  workgroupBarrier();
  return total;
}

// ℓ_b from a row's statistics and its label term Σ_c y_c d_c (labelDot), and the statistics
// written out (distill-common.wgsl's layout) for the backward, reduction and components
// kernels; w is the row's weight in the op's output.
fn finishRow(row: u32, rs: RowStats, labelDot: f32, w: f32) -> f32 {
  let ce = rs.labelSum * rs.logZ1 - labelDot;
  let klInf = (rs.flags & FLAG_KL_INF) != 0u;
  var loss = params.alpha * ce + select(params.klWeight * rs.kl, 0.0, klInf);
  var klOut = select(rs.kl, positiveInfinity(), klInf);
  // +Infinity terms, by selection; a zero weight drops one (as the reference does)
  if ((klInf && params.klWeight != 0.0) ||
      ((rs.flags & FLAG_CE_INF) != 0u && params.alpha != 0.0)) {
    loss = positiveInfinity();
  }
  if ((rs.flags & FLAG_NAN) != 0u) {
    loss = quietNan();
    klOut = quietNan();
  }
  if ((rs.flags & FLAG_BAD_LABEL) != 0u) {
    loss = quietNan();
  }
  // CE_b, the hard component (returnComponents): NaN where the student's side or the labels
  // are unusable, +Infinity for label mass on a column the student masks
  var ceOut = select(ce, positiveInfinity(), (rs.flags & FLAG_CE_INF) != 0u);
  ceOut = select(ceOut, quietNan(), (rs.flags & (FLAG_STUDENT_NAN | FLAG_BAD_LABEL)) != 0u);
  if ((rs.flags & FLAG_IGNORED) != 0u) {
    loss = 0.0;
    klOut = 0.0;
    ceOut = 0.0;
  }
  let weight = select(w, 0.0, (rs.flags & FLAG_IGNORED) != 0u);
  stats[row] = storeRowStats(rs, klOut, weight, ceOut);
  return loss;
}

// A finished row's loss: written out per row, or (BATCH_IN_WORKGROUP) added to the
// invocation's finite sum, NaN and +Infinity kept aside as flags (lossSpecial).
fn addRowLoss(row: u32, loss: f32, acc: ptr<function, f32>, specials: ptr<function, u32>) {
  if (BATCH_IN_WORKGROUP) {
    let special = lossSpecial(loss);
    *acc += select(loss, 0.0, special != 0u);
    *specials = *specials | special;
  } else {
    losses[row] = loss;
  }
}

// BATCH_IN_WORKGROUP: the workgroup's sums merged in a tree and the batch's loss written
// (rowWeight · Σ ℓ_b, or NaN / +Infinity selected); called in uniform control flow.
fn writeBatchLoss(lid: u32, acc: f32, specials: u32, rowWeight: f32) {
  sharedLoss[lid] = acc;
  sharedFlags[lid] = specials;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) {
      sharedLoss[lid] += sharedLoss[lid + stride];
      sharedFlags[lid] = sharedFlags[lid] | sharedFlags[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    losses[0] = withSpecials(sharedLoss[0] * rowWeight, sharedFlags[0]);
  }
}
