// memory_ceiling.wgsl — the kernel benchmark's memory ceiling (bench/core/lib/memory-ceiling.ts).
//
// Maths: o[i] = a[i] + b[i] for i < n = rows × C, over float32 as vec4s. A forward+backward of
// the distillation loss must read the student and the teacher logits ([rows, C] float32 each)
// and write the gradient ([rows, C] float32): at least two reads and one write of rows × C
// floats, 3 × 4 × rows × C bytes. This kernel moves exactly that and computes next to nothing,
// so its time is the least a fused loss+gradient pass can take on this device; the benchmark's
// GB/s figures divide these 12 × rows × C bytes by a measured time.
//
// Bindings (group 0): 0 a vec4<f32>[n/4] read, 1 b vec4<f32>[n/4] read,
//                     2 o vec4<f32>[n/4] read_write, 3 count u32 uniform (n/4)
// Thread plan: one vec4 per invocation, 256 invocations per workgroup, workgroups on a 2-D grid
// (x ≤ 65535) flattened back to one index.

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> count: vec4<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i < count.x) {
    o[i] = a[i] + b[i];
  }
}
