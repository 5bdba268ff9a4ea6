// distill-backward.wgsl — gradients of the distillation loss with respect to the student's and
// the teacher's logits, recomputed from the row statistics that distill-forward.wgsl saved.
// Used when the forward pass did not write a gradient that turns out to be needed (the
// teacher's logits were not on the tape when the loss ran); the common case scales the
// gradients the forward pass wrote.
//
// With w_b = (the row's weight, saved in its statistics) · dy_b (dy_b = dy for a scalar
// upstream gradient), σ = softmax(s),
// q = softmax(s / T), p = softmax(t / T) (each one exponential, from the saved log-sums):
//   ∂L/∂s_bc = w_b [ α (σ_c · Σ_j y_j − y_c) + (1 − α) (k / T) (q_c − p_c) ]
//   ∂L/∂t_bc = w_b (1 − α) (k / T) · p_c (log p_c − log q_c − KL_b)   (as p_c (x_c − E_p[x]),
//   without cancellation: see distill-common.wgsl)
// A row flagged NaN gets NaN in both gradients; a row with an out-of-range integer label gets
// NaN in the student's gradient (the teacher's does not depend on the labels).
// −Infinity logits (masks) and rows whose KL_b is +Infinity: distill-common.wgsl. These are
// forward KL's formulas; the other divergences' (the override DIVERGENCE, from the same row
// statistics): shaders/distill-divergence.wgsl.
//
// Bindings (group 0), for the rows of one chunk (distill-common.wgsl, "Row chunks"):
//   0 student Chunk[B·C/CHUNK] read      1 teacher Chunk[B·C/CHUNK] read
//   2 labelIndices i32[B] read           3 denseLabels Chunk[B·C/CHUNK] read
//   4 params Params uniform              5 stats f32[B·12] read
//   6 dy f32[1] or f32[B] read
//   7 gradStudent Chunk[B·C/CHUNK] read_write      8 gradTeacher Chunk[B·C/CHUNK] read_write
// (A label or gradient binding that this specialisation does not use is bound to a 16-byte
// placeholder and never touched.)
//
// Thread plan: as in distill-forward.wgsl, a workgroup is TILE_ROWS × TILE_COLS = 256
// invocations; the grid's y dimension walks the rows (TILE_ROWS per workgroup, in steps of
// gridRows · TILE_ROWS) and its x dimension covers a row in spans of
// TILE_COLS · CHUNKS_PER_THREAD chunks. No reductions, no barriers: each element's gradient
// needs only its row's statistics. Exponentials per element: σ, q and p, three (forward KL: two
// where every lane of a chunk has q and p within e^±1, q − p then coming from p and a series;
// one when only the teacher's gradient is written). A row without FLAG_NONFINITE in its
// statistics (no mask, NaN or infinity; or ignored, its gradients selected to 0) takes the
// same formulas without the masks' selects.
// The components' gradients (returnComponents) are this kernel at α = 1 (hardLoss: klWeight 0)
// and α = 0 (softLoss: klWeight k), as the composition and the reference define them.

@group(0) @binding(0) var<storage, read> student: array<Chunk>;
@group(0) @binding(1) var<storage, read> teacher: array<Chunk>;
@group(0) @binding(2) var<storage, read> labelIndices: array<i32>;
@group(0) @binding(3) var<storage, read> denseLabels: array<Chunk>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> stats: array<StoredRowStats>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read_write> gradStudent: array<Chunk>;
@group(0) @binding(8) var<storage, read_write> gradTeacher: array<Chunk>;

override TILE_COLS: u32 = 256u;
override DENSE_LABELS: bool = false;
override WRITE_STUDENT_GRAD: bool = true;
override WRITE_TEACHER_GRAD: bool = false;
override WORKGROUP_SIZE: u32 = 256u;
override CHUNKS_PER_THREAD: u32 = 4u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tileRows = WORKGROUP_SIZE / TILE_COLS;
  let chunksPerRow = params.classes / CHUNK;
  let firstChunk = wg.x * TILE_COLS * CHUNKS_PER_THREAD + lid % TILE_COLS;

  for (var local = wg.y * tileRows + lid / TILE_COLS; local < params.rows;
       local += params.gridRows * tileRows) {
    let row = params.firstRow + local;
    let stored = stats[row];
    let rs = loadRowStats(stored);
    // w_b as the forward pass weighted the row (0 when ignored, 1/N over the counted rows).
    let w = stored.weight * dy[select(0u, row, params.dyPerRow != 0u)];
    var label = -1;
    if (!DENSE_LABELS && WRITE_STUDENT_GRAD) { label = labelIndices[row]; }
    let base = params.headChunks + local * chunksPerRow;
    // (a runtime choice here: the forward kernel's gradient sweep is the one specialised)
    let general = (rs.flags & FLAG_NONFINITE) != 0u;

    for (var k = 0u; k < CHUNKS_PER_THREAD; k++) {
      let c = firstChunk + k * TILE_COLS;
      if (c >= chunksPerRow) { break; }
      let e = base + c;
      let s = student[e];
      let t = teacher[e];
      if (WRITE_STUDENT_GRAD) {
        var y: Chunk;
        if (DENSE_LABELS) {
          y = denseLabels[e];
        } else {
          y = chunkOneHot(c * CHUNK, label);
        }
        gradStudent[e] = studentGradOutFor(w, studentGradFor(s, t, y, rs, general), rs, s);
      }
      if (WRITE_TEACHER_GRAD) {
        gradTeacher[e] = teacherGradOutFor(w, teacherGradFor(s, t, rs, general), rs, t);
      }
    }
  }
}
