import { type KernelCall, kernelThreads, pieceCount, rangeCalls, runShared } from "./threads.js";
import { Func, KernelModule, encodeModule } from "./wasm-asm.js";
import { simdKernels } from "./simd.js";
import { type WasmBackend, heapMemory } from "./wasm-heap.js";

/**
 * Matrix multiplication C = A·B in WebAssembly SIMD, on the TensorFlow.js wasm heap: the engine behind every
 * Linear layer's forward and backward pass.
 *
 * The classic blocked algorithm (GotoBLAS, BLIS), scaled down to WebAssembly's 128-bit vectors:
 *  - B is first *packed*: copied into strips of 8 columns, each strip K rows of 8 floats one after another,
 *    zero-padded past column N. The inner loop then reads B sequentially whatever B's layout was (a
 *    transposed B is packed through its strides), and every strip is a full 8 wide. (Except for a few rows
 *    of A, as in generation, against a row-major B: then packing would cost as much as the product.)
 *  - The micro-kernel computes a 4 × 8 tile of C in 8 vector registers (4 rows × 2 vectors of 4 floats): for
 *    each k it loads 8 floats of the strip and one float of each of 4 rows of A (broadcast to 4 lanes), and
 *    does 8 vector multiply-adds: 32 multiply-adds for 6 loads. 8 accumulators also keep the multiply-add
 *    unit busy: each depends on its previous value (latency ~4 cycles) and 2 start per cycle.
 *  - A is read through a row stride and a k stride. A transposed A (a weight gradient dW = xᵀ·dy) is
 *    first transposed into a scratch copy when its sizes are multiples of 4, so that each row of A is read
 *    sequentially (1.15-1.4x faster than 4 floats from every 64-byte cache line).
 *  - Long K (that weight gradient: K = batch · tokens) is cut into chunks so that the part of packed B in
 *    use stays in the core's L2 cache; each chunk adds its partial products into C.
 *  - Packing, transposing and the rows of C are shared out among the kernel threads (threads.ts). Each
 *    entry of C is one thread's sum in k order, so the result does not depend on the number of threads.
 *
 * With relaxed SIMD (`f32x4.relaxed_madd`, one fused multiply-add instruction on CPUs with FMA) the
 * multiply-add is one instruction instead of two: measured here 34-39 GFLOP/s per core against 23-24 for
 * XNNPACK's SIMD-128 kernels (bench/NOTES.md §18). Node 20 has relaxed SIMD behind a V8 flag, which
 * `relaxedSimdAvailable` turns on; Node ≥ 22 and current browsers have it. Without it the kernels use a
 * multiply then an add (still faster than XNNPACK here). A fused multiply-add rounds once instead of twice,
 * so results differ from an unfused product in the last bits; on one machine they are always the same.
 */

/** Columns of a packed strip, rows of the micro-kernel's tile. */
const STRIP = 8;
const TILE_ROWS = 4;
/** K per chunk: 256 rows of a packed strip are 8 KiB; a 384-column chunk of packed B, 384 KiB (L2 is 512). */
const K_CHUNK = 256;

export interface GemmKernels {
  /**
   * Packs B (K × N, element (k, n) at b + 4 (k · rowStride + n · colStride)) into strips of 8 columns at
   * `packed`: strip s holds rows k = 0 … K−1 of columns 8s … 8s+7, zeros past N. Needs ⌈N/8⌉ · K · 32 bytes.
   */
  pack(b: number, rowStride: number, colStride: number, K: number, N: number, packed: number): void;
  /**
   * C rows 0 … rows−1 (rows a multiple of 4; `rows1` takes any count) = A · B, for N columns and K products
   * per entry. Byte strides: A's element (i, k) at a + i · aRowBytes + k · aKBytes; B's strip s (8 columns)
   * at b + s · stripBytes, its row k bKBytes further each (packed: stripBytes = 32 K, bKBytes = 32; a
   * row-major B with N a multiple of 8 as it is: 32 and 4 N); C's rows cRowBytes apart. scratch: 128 bytes
   * for the last strip when N is not a multiple of 8.
   */
  rows4(a: number, aRowBytes: number, aKBytes: number, b: number, stripBytes: number, bKBytes: number, c: number,
    cRowBytes: number, rows: number, N: number, K: number, scratch: number): void;
  rows1(a: number, aRowBytes: number, aKBytes: number, b: number, stripBytes: number, bKBytes: number, c: number,
    cRowBytes: number, rows: number, N: number, K: number, scratch: number): void;
}

function packFunc(): Func {
  const f = new Func("pack", 6);
  const [b, rowStride, colStride, K, N, packed] = [0, 1, 2, 3, 4, 5];
  const [j, k, col, out, rowBytes, colBytes, from, count] = Array.from({ length: 8 }, () => f.local("i32"));
  f.get(rowStride).i32(2).shl().set(rowBytes);
  f.get(colStride).i32(2).shl().set(colBytes);
  f.get(packed).set(out);
  f.forRange(j, () => f.i32(0), () => f.get(N), STRIP, () => {
    f.forRange(k, () => f.i32(0), () => f.get(K), 1, () => {
      f.get(b).get(k).get(rowBytes).mul().add().get(j).get(colBytes).mul().add().set(from);
      // columns j … j+7 (fewer at the end), zeros past N; contiguous full strips as two vector copies
      f.get(N).get(j).sub().tee(count).i32(STRIP).get(count).i32(STRIP).ltU().select().set(count);
      f.get(colStride).i32(1).sub().eqz().get(count).i32(STRIP).sub().eqz().and();
      f.if_(() => {
        f.get(out).get(from).load().store();
        f.get(out).get(from).load(16).store(16);
      });
      f.get(colStride).i32(1).sub().eqz().get(count).i32(STRIP).sub().eqz().and().eqz();
      f.if_(() => {
        f.get(out).f32(0).splat().store();
        f.get(out).f32(0).splat().store(16);
        f.forRange(col, () => f.i32(0), () => f.get(count), 1, () => {
          f.get(out).get(col).i32(2).shl().add().get(from).f32Load().f32Store();
          f.get(from).get(colBytes).add().set(from);
        });
      });
      f.get(out).i32(4 * STRIP).add().set(out);
    });
  });
  return f;
}

/**
 * The micro-kernel's loops for `R` rows at a time (R = 4, or 1 for the last rows): K in chunks of K_CHUNK
 * (the first overwrites C, the others add to it), then tiles of R rows, then strips.
 */
function rowsFunc(name: string, R: number, fused: boolean): Func {
  const f = new Func(name, 12);
  const [a, aRowBytes, aKBytes, b, stripBytes, bKBytes, c, cRowBytes, rows, N, K, scratch] = Array.from({ length: 12 }, (_, i) => i);
  const [k0, chunkBytes, i, j, p, pEnd, cRow, col, r] = Array.from({ length: 9 }, () => f.local("i32"));
  const aRow = Array.from({ length: R }, () => f.local("i32"));
  const acc = Array.from({ length: 2 * R }, () => f.local("v128"));
  const [b0, b1, av] = [f.local("v128"), f.local("v128"), f.local("v128")];
  const multiplyAdd = (x: number, y: number, sum: number) => {
    if (fused) f.get(x).get(y).get(sum).vmadd().set(sum);
    else f.get(sum).get(x).get(y).vmul().vadd().set(sum);
  };
  const fullStrip = () => f.get(j).i32(STRIP).add().get(N).ltU().get(j).i32(STRIP).add().get(N).sub().eqz().or();
  f.forRange(k0, () => f.i32(0), () => f.get(K), K_CHUNK, () => {
    // this chunk's rows of a strip: min(K_CHUNK, K − k0) rows, bKBytes apart
    f.get(K).get(k0).sub().tee(chunkBytes).i32(K_CHUNK).get(chunkBytes).i32(K_CHUNK).ltU().select().get(bKBytes).mul().set(chunkBytes);
    f.forRange(i, () => f.i32(0), () => f.get(rows), R, () => {
      f.forRange(j, () => f.i32(0), () => f.get(N), STRIP, () => {
        for (const x of acc) f.f32(0).splat().set(x);
        for (let q = 0; q < R; q++) {
          f.get(a).get(i).i32(q).add().get(aRowBytes).mul().add().get(k0).get(aKBytes).mul().add().set(aRow[q]);
        }
        // strip j / 8 of B, from row k0
        f.get(b).get(j).i32(3).shrU().get(stripBytes).mul().add().get(k0).get(bKBytes).mul().add().tee(p).get(chunkBytes).add().set(pEnd);
        f.block(() => f.loop(() => {
          f.get(p).get(pEnd).ltU().eqz().brIf(1);
          f.get(p).load().set(b0);
          f.get(p).load(16).set(b1);
          for (let q = 0; q < R; q++) {
            f.get(aRow[q]).loadSplat().set(av);
            multiplyAdd(av, b0, acc[2 * q]);
            multiplyAdd(av, b1, acc[2 * q + 1]);
            f.get(aRow[q]).get(aKBytes).add().set(aRow[q]);
          }
          f.get(p).get(bKBytes).add().set(p);
          f.br(0);
        }));
        f.get(c).get(i).get(cRowBytes).mul().add().get(j).i32(2).shl().add().set(cRow);
        fullStrip();
        f.if_(() => {
          // a full strip: add the earlier chunks' sums, store
          for (let q = 0; q < R; q++) {
            for (let half = 0; half < 2; half++) {
              f.get(k0).if_(() => f.get(acc[2 * q + half]).get(cRow).load(16 * half).vadd().set(acc[2 * q + half]));
              f.get(cRow).get(acc[2 * q + half]).store(16 * half);
            }
            f.get(cRow).get(cRowBytes).add().set(cRow);
          }
        });
        fullStrip();
        f.eqz().if_(() => {
          // the last strip, N − j < 8 columns: through scratch, column by column
          for (let q = 0; q < R; q++) {
            f.get(scratch).get(acc[2 * q]).store(32 * q);
            f.get(scratch).get(acc[2 * q + 1]).store(32 * q + 16);
          }
          f.forRange(r, () => f.i32(0), () => f.i32(R), 1, () => {
            f.forRange(col, () => f.i32(0), () => f.get(N).get(j).sub(), 1, () => {
              f.get(cRow).get(col).i32(2).shl().add();
              f.get(scratch).get(r).i32(5).shl().add().get(col).i32(2).shl().add().f32Load();
              f.get(cRow).get(col).i32(2).shl().add().f32Load().f32(0).get(k0).select().f32Add();
              f.f32Store();
            });
            f.get(cRow).get(cRowBytes).add().set(cRow);
          });
        });
      });
    });
  });
  return f;
}

/** A matrix in the heap: element (i, j) at offset + 4 (i · rowStride + j · colStride), bytes and floats. */
export interface Matrix {
  offset: number;
  rowStride: number;
  colStride: number;
}

/** A row-major matrix of `cols` columns at byte offset `offset`, or its transpose. */
export function rowMajor(offset: number, cols: number, transposed = false): Matrix {
  return transposed ? { offset, rowStride: 1, colStride: cols } : { offset, rowStride: cols, colStride: 1 };
}

/** Rows of A from which B is packed (below, a row-major B with whole strips is read as it is). */
const PACK_MIN_ROWS = 16;
/** Multiply-adds from which a matmul is shared out among the kernel threads (~50 µs of work). */
const PARALLEL_WORK = 1 << 21;

/**
 * C (M × N, row-major, `cRowStride` floats a row) = A (M × K) · B (K × N), with A and B read through their
 * strides (so either may be a transposed view).
 */
export function multiplyMatrices(backend: WasmBackend, kernels: GemmKernels, a: Matrix, b: Matrix, c: number, cRowStride: number, M: number, K: number, N: number): void {
  const threads = kernelThreads(heapMemory(backend), M * K * N, PARALLEL_WORK);
  const pieces = pieceCount(threads);
  const strips = Math.ceil(N / STRIP);
  // A few rows (generation: one at a time) against a row-major B of whole strips: B is read as it is, since
  // packing it would move as many floats as the product multiplies
  const packB = !(M < PACK_MIN_ROWS && b.colStride === 1 && N % STRIP === 0);
  const packedStripBytes = K * STRIP * 4;
  const packedBytes = packB ? strips * packedStripBytes : 0;
  // A stored transposed (Aᵀ row-major, as in dW = xᵀ·dy) is transposed first (see the top of the file)
  const simd = simdKernels(backend);
  const transposeA = simd !== null && a.rowStride === 1 && a.colStride === M && M % 4 === 0 && K % 4 === 0;
  const scratchBytes = 4 * STRIP * TILE_ROWS;
  const transposedAt = packedBytes + (pieces + 1) * scratchBytes;
  const memory = backend.wasm._malloc(transposedAt + (transposeA ? 4 * M * K : 0)) >>> 0;
  const scratch = memory + packedBytes;
  try {
    const prepare: KernelCall[] = [];
    if (packB) {
      // B's strips, a few ranges of them per thread
      prepare.push(...rangeCalls(threads, strips, 1, (from, count) =>
        ["pack", b.offset + 4 * STRIP * from * b.colStride, b.rowStride, b.colStride, K, Math.min(N - STRIP * from, STRIP * count), memory + from * packedStripBytes]));
    }
    if (transposeA) {
      // Aᵀ is K × M row-major; rows of A (its columns) in a few ranges per thread
      prepare.push(...rangeCalls(threads, M, 4, (from, count) => ["transpose", a.offset + 4 * from, memory + transposedAt + 4 * from * K, K, count, M, K]));
      a = rowMajor(memory + transposedAt, K);
    }
    runShared(threads, { ...kernels, ...simd }, prepare);
    // rows of C: a few ranges (multiples of 4) per thread, and the last M mod 4 rows
    const bStrips = packB ? [memory, packedStripBytes, 4 * STRIP] : [b.offset, 4 * STRIP, 4 * b.rowStride];
    const tiles = Math.floor(M / TILE_ROWS);
    const rowsCall = (kernel: string, from: number, to: number, part: number): KernelCall =>
      [kernel, a.offset + 4 * from * a.rowStride, 4 * a.rowStride, 4 * a.colStride, ...bStrips, c + 4 * from * cRowStride, 4 * cRowStride, to - from, N, K, scratch + part * scratchBytes];
    const calls = rangeCalls(threads, tiles, 1, (from, count, piece) => rowsCall("rows4", TILE_ROWS * from, TILE_ROWS * (from + count), piece));
    if (TILE_ROWS * tiles < M) calls.push(rowsCall("rows1", TILE_ROWS * tiles, M, pieces));
    runShared(threads, kernels, calls);
  } finally {
    backend.wasm._free(memory);
  }
}

/** A tiny module using f32x4.relaxed_madd: WebAssembly.validate tells whether this runtime has relaxed SIMD. */
function relaxedSimdProbe(): Uint8Array<ArrayBuffer> {
  const f = new Func("probe", 0);
  const v = f.local("v128");
  f.get(v).get(v).get(v).vmadd().set(v);
  return encodeModule([f], false);
}

/**
 * Whether relaxed SIMD is available, turning it on first where the runtime has it behind a flag (Node 20:
 * V8's --experimental-wasm-relaxed-simd, which takes effect for modules compiled after it is set).
 * GPT_WASM_FMA=0 says no (the unfused kernels, for comparisons).
 */
export function relaxedSimdAvailable(): boolean {
  if (typeof process !== "undefined" && process.env?.GPT_WASM_FMA === "0") return false;
  const probe = relaxedSimdProbe();
  if (WebAssembly.validate(probe)) return true;
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process?.getBuiltinModule;
  const v8 = getBuiltin?.("node:v8") as { setFlagsFromString(flags: string): void } | undefined;
  if (!v8) return false;
  v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  return WebAssembly.validate(probe);
}

export const gemmModule = new KernelModule<GemmKernels>("matmul kernels", () => {
  const fused = relaxedSimdAvailable();
  return [packFunc(), rowsFunc("rows4", TILE_ROWS, fused), rowsFunc("rows1", 1, fused)];
});

/** The matmul kernels over this backend's heap, or null where WebAssembly SIMD is unavailable. */
export function gemmKernels(backend: WasmBackend): GemmKernels | null {
  return gemmModule.instance(heapMemory(backend));
}
