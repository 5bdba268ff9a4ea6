// distill-chunk-vec4.wgsl — the "chunk" a distillation kernel loads at once when every row
// starts on a 16-byte boundary (C % 4 == 0): four classes as a vec4. Prepended, as a whole
// file, instead of distill-chunk-scalar.wgsl; the kernels are written once against `Chunk`.
// (On lavapipe a vec4 load costs about what a scalar load does, so this halves a pass.)

alias Chunk = vec4<f32>;
const CHUNK: u32 = 4u;

fn chunkSum(x: Chunk) -> f32 {
  return (x.x + x.y) + (x.z + x.w);
}

fn chunkMax(x: Chunk) -> f32 {
  return max(max(x.x, x.y), max(x.z, x.w));
}

fn chunkHasNan(x: Chunk) -> bool {
  return any((bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u));
}

// Whether any lane is not a finite number (NaN, +Infinity or −Infinity), by its exponent bits:
// a row's first sweep notes it (FLAG_NONFINITE) and the row is then swept in the general form.
fn chunkNonFinite(x: Chunk) -> bool {
  let e = vec4<u32>(0x7f800000u);
  return any((bitcast<vec4<u32>>(x) & e) == e);
}

// One bool per lane: a chunk's masks.
alias ChunkMask = vec4<bool>;

// A NaN or +Infinity in any lane (bit tests: WGSL lets an implementation assume them away in
// arithmetic). −Infinity is a mask, not an error.
fn chunkNanOrPosInf(x: Chunk) -> bool {
  let bits = bitcast<vec4<u32>>(x);
  return any(((bits & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u)) |
             (bits == vec4<u32>(0x7f800000u)));
}

// The lanes holding −Infinity (a mask: probability 0), by their bit pattern.
fn chunkMasked(x: Chunk) -> ChunkMask {
  return bitcast<vec4<u32>>(x) == vec4<u32>(0xff800000u);
}

// 1 where class firstClass + lane equals label, else 0.
fn chunkOneHot(firstClass: u32, label: i32) -> Chunk {
  let classes = vec4<i32>(vec4<u32>(firstClass) + vec4<u32>(0u, 1u, 2u, 3u));
  return select(Chunk(0.0), Chunk(1.0), classes == vec4<i32>(label));
}

// Component `lane` (0..3) of a chunk.
fn chunkLane(x: Chunk, lane: u32) -> f32 {
  return x[lane];
}
