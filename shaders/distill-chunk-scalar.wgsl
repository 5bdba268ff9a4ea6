// distill-chunk-scalar.wgsl — the "chunk" a distillation kernel loads at once when rows are not
// 16-byte aligned (C % 4 != 0): one class. Prepended, as a whole file, instead of
// distill-chunk-vec4.wgsl; the kernels are written once against `Chunk`.

alias Chunk = f32;
const CHUNK: u32 = 1u;

fn chunkSum(x: Chunk) -> f32 {
  return x;
}

fn chunkMax(x: Chunk) -> f32 {
  return x;
}

fn chunkHasNan(x: Chunk) -> bool {
  return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn chunkNonFinite(x: Chunk) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

alias ChunkMask = bool;

fn chunkNanOrPosInf(x: Chunk) -> bool {
  let bits = bitcast<u32>(x);
  return (bits & 0x7fffffffu) > 0x7f800000u || bits == 0x7f800000u;
}

fn chunkMasked(x: Chunk) -> ChunkMask {
  return bitcast<u32>(x) == 0xff800000u;
}

fn chunkOneHot(firstClass: u32, label: i32) -> Chunk {
  return select(0.0, 1.0, i32(firstClass) == label);
}

fn chunkLane(x: Chunk, lane: u32) -> f32 {
  return x;
}
