// distill_rows.wgsl — ignored rows and their count, shared by the kernels that weigh rows
// themselves (distill_forward.wgsl, distill_sparse.wgsl); prepended to the kernel's own file,
// which declares what these read: labelIndices (i32, the whole batch), params, the override
// constants IGNORE_INDEX and WORKGROUP_SIZE, and var<workgroup> sharedCount: array<u32,
// WORKGROUP_SIZE>.
//
// N, the rows not ignored ('mean' with an ignore index divides by max(N, 1)), is counted by
// every workgroup that needs it from the int32 labels: B / WORKGROUP_SIZE loads per invocation
// plus a tree. The grid of such a dispatch is capped (src/kernels/webgpu/distill_webgpu.ts,
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
