// distill-scale.wgsl — the backward pass when the forward kernel already wrote the gradients at
// unit upstream gradient: one dispatch multiplies the student's and (when written) the
// teacher's gradient by the upstream gradient dy.
//
// Forward (of this kernel): outS = dy_b · gS,  outT = dy_b · gT   (dy_b = dy for a scalar dy)
// Gradient: none (it is itself a gradient computation).
//
// Bindings (group 0):
//   0 gradStudent Chunk[B·C/CHUNK] read     1 gradTeacher Chunk[B·C/CHUNK] read (or placeholder)
//   2 dy f32[1] or f32[B] read              3 params Params uniform
//   4 outStudent Chunk[B·C/CHUNK] read_write   5 outTeacher Chunk[B·C/CHUNK] read_write
//
// Thread plan: one chunk per invocation per pass of a grid-stride loop over the rows · C/CHUNK
// chunks of this dispatch's row chunk (distill-common.wgsl, "Row chunks"; 2-D grid: x · y
// workgroups of WORKGROUP_SIZE, flattened), the row of chunk i being firstRow + i / (C / CHUNK)
// when dy has one entry per row.

@group(0) @binding(0) var<storage, read> gradStudent: array<Chunk>;
@group(0) @binding(1) var<storage, read> gradTeacher: array<Chunk>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read_write> outStudent: array<Chunk>;
@group(0) @binding(5) var<storage, read_write> outTeacher: array<Chunk>;

override WORKGROUP_SIZE: u32 = 256u;
override SCALE_TEACHER: bool = false;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let chunksPerRow = params.classes / CHUNK;
  let total = params.rows * chunksPerRow;
  let stride = groups.x * groups.y * WORKGROUP_SIZE;
  for (var i = gid.x + gid.y * groups.x * WORKGROUP_SIZE; i < total; i += stride) {
    let w = dy[select(0u, params.firstRow + i / chunksPerRow, params.dyPerRow != 0u)];
    let e = params.headChunks + i;
    outStudent[e] = w * gradStudent[e];
    if (SCALE_TEACHER) {
      outTeacher[e] = w * gradTeacher[e];
    }
  }
}
