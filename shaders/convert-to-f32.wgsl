// convert-to-f32.wgsl — out[i] = f32(in[i]) for every i in [0, n): an int32 tensor, or a bool
// tensor (stored by tfjs-backend-webgpu as i32 0 / 1), converted to float32. Exact for
// |in[i]| ≤ 2²⁴; beyond that WGSL rounds to one of the two nearest floats. Standalone (no
// shared declarations): dispatched before a kernel that reads f32 from an input that tfjs
// relabelled float32 without converting it (tf.cast / .toFloat() of int32 or bool data).
//
// Bindings (group 0):
//   0 src i32[n] read      1 params ConvertParams uniform      2 dst f32[n] read_write
//
// Thread plan: one element per invocation per pass of a grid-stride loop (2-D grid: x · y
// workgroups of WORKGROUP_SIZE, flattened), so n may exceed 65535 workgroups' worth.

struct ConvertParams {
  n: u32,
}

@group(0) @binding(0) var<storage, read> src: array<i32>;
@group(0) @binding(1) var<uniform> params: ConvertParams;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let stride = groups.x * groups.y * WORKGROUP_SIZE;
  for (var i = gid.x + gid.y * groups.x * WORKGROUP_SIZE; i < params.n; i += stride) {
    dst[i] = f32(src[i]);
  }
}
