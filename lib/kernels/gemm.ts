import { STRIP, TILE_ROWS, packAFunc, packFunc } from "./gemm-pack.js";
import { dotRowsFunc, packRowsFunc, rowsFunc } from "./gemm-micro-kernel.js";
import { type KernelCall, type KernelThreads, kernelThreads, pieceCount, rangeCalls, runShared } from "./threads.js";
import { Func } from "./wasm-asm.js";
import { KernelModule, encodeModule } from "./wasm-module.js";
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
 *  - A is packed too, in panels of 4 rows: for each k the 4 floats the micro-kernel broadcasts, side by
 *    side, so that it reads them through one pointer (row-major A and a transposed A, as in a weight
 *    gradient dW = xᵀ·dy, alike). The last M mod 4 rows are read through A's strides, one at a time.
 *  - Long K (that weight gradient: K = batch · tokens) is cut into chunks so that the part of packed B in
 *    use stays in the core's L2 cache; each chunk adds its partial products into C.
 *  - Packing and the rows of C are shared out among the kernel threads (threads.ts). Each entry of C is one
 *    thread's sum in k order, so the result does not depend on the number of threads.
 *
 * With relaxed SIMD (`f32x4.relaxed_madd`, one fused multiply-add instruction on CPUs with FMA) the
 * multiply-add is one instruction instead of two: measured here 1.5-2x the speed of XNNPACK's SIMD-128
 * kernels per core (bench/NOTES.md, "The speed layer"). Node 20 has relaxed SIMD behind a V8 flag, which
 * `relaxedSimdAvailable` turns on; Node ≥ 22 and current browsers have it. Without it the kernels use a
 * multiply then an add (still faster than XNNPACK here). A fused multiply-add rounds once instead of twice,
 * so results differ from an unfused product in the last bits; on one machine they are always the same.
 */

export interface GemmKernels {
  /**
   * Packs B (K × N, element (k, n) at b + 4 (k · rowStride + n · colStride)) into strips of 8 columns at
   * `packed`: strip s holds rows k = 0 … K−1 of columns 8s … 8s+7, zeros past N. Needs ⌈N/8⌉ · K · 32 bytes.
   * sums: 0, or where each strip's 8 column sums Σ_k B[k, n] go (8 floats a strip; blocks of 32 rows in
   * float32, added in float64).
   */
  pack(b: number, rowStride: number, colStride: number, K: number, N: number, packed: number, sums: number): void;
  /**
   * Packs rows of A (M × K, M a multiple of 4, element (i, k) at a + 4 (i · rowStride + k · colStride)) into
   * panels of 4 rows at `packed`: panel t holds, for each k, the 4 floats A[4t … 4t+3, k]. Needs 4 M K bytes.
   */
  packA(a: number, rowStride: number, colStride: number, M: number, K: number, packed: number): void;
  /**
   * C rows 0 … rows−1 (a multiple of 4) = A · B, for N columns and K products per entry, A in panels of 4
   * rows (`packA`; panelBytes = 16 K). B's strip s (8 columns) is at b + s · stripBytes, its row k bKBytes
   * further each (packed: stripBytes = 32 K, bKBytes = 32; a row-major B with N a multiple of 8 as it is:
   * 32 and 4 N). C's rows are cRowBytes apart. scratch: 128 bytes for the last strip when N is not a
   * multiple of 8. bias: 0, or N floats added to every row of C (after the sums, as a separate Add would).
   * (unused: 16, the panels' k stride.)
   */
  rows4(
    panels: number,
    panelBytes: number,
    unused: number,
    b: number,
    stripBytes: number,
    bKBytes: number,
    c: number,
    cRowBytes: number,
    rows: number,
    N: number,
    K: number,
    scratch: number,
    bias: number,
  ): void;
  /**
   * `packA` for these rows of A into `packed`, then `rows4` over them: rows4's panels = packed, panelBytes =
   * 16 K; the other arguments as rows4's.
   */
  packRows4(
    a: number,
    rowStride: number,
    colStride: number,
    rows: number,
    K: number,
    packed: number,
    b: number,
    stripBytes: number,
    bKBytes: number,
    c: number,
    cRowBytes: number,
    N: number,
    scratch: number,
    bias: number,
  ): void;
  /** c[n] = Σ_k a[k] · B[n, k] for n < rows: B's rows (K contiguous floats each) bRowBytes apart, a contiguous. */
  dotRows(a: number, b: number, bRowBytes: number, c: number, rows: number, K: number): void;
  /** The same for any number of rows, one at a time, A's element (i, k) at a + i · aRowBytes + k · aKBytes. */
  rows1(
    a: number,
    aRowBytes: number,
    aKBytes: number,
    b: number,
    stripBytes: number,
    bKBytes: number,
    c: number,
    cRowBytes: number,
    rows: number,
    N: number,
    K: number,
    scratch: number,
    bias: number,
  ): void;
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

/** Rows of A up to which a large transposed B is read as it lies, by dot products (`dotRows`), not packed. */
const DOT_MAX_ROWS = 2;
/** Floats of B from which that pays: packing copies all of B; below this, packing is cheap next to the call. */
const DOT_MIN_FLOATS = 1 << 20;
/** Rows of A from which B is packed (below, a row-major B with whole strips is read as it is). */
const PACK_MIN_ROWS = 16;
/**
 * Strips of B in one column block when B is wide: 64 strips (512 columns) of a K chunk are 512 KiB, which stay in
 * the L2 cache while every row panel of A passes over them. Without blocking, each panel would stream all of a
 * wide B from memory again (the tied head x · wteᵀ: 51 MB per panel and chunk).
 */
const BLOCK_STRIPS = 64;
/** Bytes of packed B up to which the calling thread packs B alone (a 128 × 512 weight: 256 KiB, ~20-60 µs). */
const SMALL_PACKED_B = 1 << 19;
/** Multiply-adds from which a matmul is shared out among the kernel threads (~50 µs of work). */
const PARALLEL_WORK = 1 << 21;
/**
 * Rows of A as which a product of fewer rows counts when deciding whether to share it out: its time is
 * reading B from memory (a 768 × 768 weight, 2.4 MB: ~0.3 ms), which two threads do faster than one.
 */
const ROWS_READING_B = 8;

/**
 * Column blocks for a wide B: at most BLOCK_STRIPS strips each, of equal widths, and as many as a multiple of
 * the threads, at least two each, so that the threads finish together (N = 768: 2 blocks of 64 and 32 strips
 * left one thread a third idle; GPT-2's 768-wide products ran at 51 GFLOP/s on 2 threads).
 */
function columnBlockCount(strips: number, threads: KernelThreads | null): number {
  const count = threads?.count ?? 1;
  const blocks = Math.max(Math.ceil(strips / BLOCK_STRIPS), 2 * count);
  return Math.ceil(blocks / count) * count;
}

/**
 * C (M × N, row-major, `cRowStride` floats a row) = A (M × K) · B (K × N) [+ bias, a row of N floats at that
 * byte offset, added to every row], with A and B read through their strides (so either may be a transposed
 * view). bSums: 0, or where B's column sums Σ_k B[k, n] go (⌈N/8⌉ · 8 floats; a weight gradient's bias
 * gradient, computed as B is packed).
 */
export function multiplyMatrices(
  backend: WasmBackend,
  kernels: GemmKernels,
  a: Matrix,
  b: Matrix,
  c: number,
  cRowStride: number,
  M: number,
  K: number,
  N: number,
  bias = 0,
  bSums = 0,
): void {
  // a product of a few rows (generation: one) is mostly reading B from memory: counted as 8 rows' work
  const threads = kernelThreads(heapMemory(backend), Math.max(M, ROWS_READING_B) * K * N, PARALLEL_WORK);
  if (!bSums && M <= DOT_MAX_ROWS && K * N >= DOT_MIN_FLOATS && b.rowStride === 1 && a.colStride === 1) {
    // one or two rows against a large transposed B (generation's tied head, x · wteᵀ): C[m, n] is the dot
    // product of A's row m with B's column n, which lies contiguous in memory; a range of columns per call
    const calls: KernelCall[] = [];
    for (let m = 0; m < M; m++)
      calls.push(
        ...rangeCalls(
          threads,
          N,
          1,
          (from, count): KernelCall => [
            "dotRows",
            a.offset + 4 * m * a.rowStride,
            b.offset + 4 * from * b.colStride,
            4 * b.colStride,
            c + 4 * (m * cRowStride + from),
            count,
            K,
          ],
        ),
      );
    runShared(threads, kernels, calls);
    if (bias) {
      const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) heap[(c >>> 2) + m * cRowStride + n] += heap[(bias >>> 2) + n];
    }
    return;
  }
  const pieces = pieceCount(threads);
  const strips = Math.ceil(N / STRIP);
  const tiles = Math.floor(M / TILE_ROWS);
  // A few rows (generation: one at a time) against a row-major B of whole strips: B is read as it is, since
  // packing it would move as many floats as the product multiplies
  const packB = bSums !== 0 || !(M < PACK_MIN_ROWS && b.colStride === 1 && N % STRIP === 0);
  const packedStripBytes = K * STRIP * 4;
  const panelBytes = K * TILE_ROWS * 4;
  const panelsAt = packB ? strips * packedStripBytes : 0;
  const scratchAt = panelsAt + tiles * panelBytes;
  const scratchBytes = 4 * STRIP * TILE_ROWS;
  // a wide B: the calls take column blocks (all of A's panels each), so that B is read from memory once
  const columnBlocks = tiles > 0 && strips > BLOCK_STRIPS ? columnBlockCount(strips, threads) : 0;
  const memory = backend.wasm._malloc(scratchAt + (Math.max(pieces, columnBlocks) + 1) * scratchBytes) >>> 0;
  // A small packed B (a weight matrix, as in a forward pass or an input gradient) is packed here, and each call
  // packs its own panels of A just before multiplying them: one job for the threads, not two with a wait
  // between them. A large one (a weight gradient's dy) is packed by all threads first, with A's panels.
  const oneJob = packB && columnBlocks === 0 && strips * packedStripBytes <= SMALL_PACKED_B;
  try {
    const panelCalls = (
      kernel: "packA" | "packRows4",
      rest: (from: number, count: number, piece: number) => number[],
    ) =>
      rangeCalls(
        threads,
        tiles,
        1,
        (from, count, piece): KernelCall => [
          kernel,
          a.offset + 4 * TILE_ROWS * from * a.rowStride,
          a.rowStride,
          a.colStride,
          TILE_ROWS * count,
          K,
          memory + panelsAt + from * panelBytes,
          ...rest(from, count, piece),
        ],
      );
    const packCalls = (sharedBy: KernelThreads | null) =>
      rangeCalls(sharedBy, strips, 1, (from, count) => [
        "pack",
        b.offset + 4 * STRIP * from * b.colStride,
        b.rowStride,
        b.colStride,
        K,
        Math.min(N - STRIP * from, STRIP * count),
        memory + from * packedStripBytes,
        bSums && bSums + 4 * STRIP * from,
      ]);
    if (oneJob) runShared(null, kernels, packCalls(null));
    else runShared(threads, kernels, [...panelCalls("packA", () => []), ...(packB ? packCalls(threads) : [])]);
    // rows of C: a few ranges of tiles per thread, and the last M mod 4 rows one at a time
    const bStrips = packB ? [memory, packedStripBytes, 4 * STRIP] : [b.offset, 4 * STRIP, 4 * b.rowStride];
    const [bAt, stripBytes, bKBytes] = bStrips;
    const cRows = (from: number) => c + 4 * TILE_ROWS * from * cRowStride;
    const calls: KernelCall[] = oneJob
      ? panelCalls("packRows4", (from, _count, piece) => [
          ...bStrips,
          cRows(from),
          4 * cRowStride,
          N,
          memory + scratchAt + piece * scratchBytes,
          bias,
        ])
      : columnBlocks > 0
        ? Array.from({ length: columnBlocks }, (_, block): KernelCall => {
            const [first, end] = [block, block + 1].map((b) => Math.floor((b * strips) / columnBlocks)); // strips
            return [
              "rows4",
              memory + panelsAt,
              panelBytes,
              16,
              bAt + first * stripBytes,
              stripBytes,
              bKBytes,
              c + 4 * STRIP * first,
              4 * cRowStride,
              TILE_ROWS * tiles,
              Math.min(N - STRIP * first, STRIP * (end - first)),
              K,
              memory + scratchAt + block * scratchBytes,
              bias && bias + 4 * STRIP * first,
            ];
          })
        : rangeCalls(
            threads,
            tiles,
            1,
            (from, count, piece): KernelCall => [
              "rows4",
              memory + panelsAt + from * panelBytes,
              panelBytes,
              16,
              ...bStrips,
              cRows(from),
              4 * cRowStride,
              TILE_ROWS * count,
              N,
              K,
              memory + scratchAt + piece * scratchBytes,
              bias,
            ],
          );
    const tail = TILE_ROWS * tiles;
    if (tail < M) {
      // the last M mod 4 rows, one at a time, over strips from … from + count − 1
      const tailCall = (from: number, count: number, piece: number): KernelCall => [
        "rows1",
        a.offset + 4 * tail * a.rowStride,
        4 * a.rowStride,
        4 * a.colStride,
        bAt + from * stripBytes,
        stripBytes,
        bKBytes,
        c + 4 * (tail * cRowStride + STRIP * from),
        4 * cRowStride,
        M - tail,
        Math.min(N - STRIP * from, STRIP * count),
        K,
        memory + scratchAt + piece * scratchBytes,
        bias && bias + 4 * STRIP * from,
      ];
      // with no tiles (generation: one row), the columns shared out: a product of one row is all reading B
      // from memory, and two threads have twice the reads in flight
      if (tiles === 0) calls.push(...rangeCalls(threads, strips, 1, tailCall));
      else calls.push(tailCall(0, strips, Math.max(pieces, columnBlocks)));
    }
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
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process
    ?.getBuiltinModule;
  const v8 = getBuiltin?.("node:v8") as { setFlagsFromString(flags: string): void } | undefined;
  if (!v8) return false;
  v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  return WebAssembly.validate(probe);
}

export const gemmModule = new KernelModule<GemmKernels>("matmul kernels", () => {
  const fused = relaxedSimdAvailable();
  const packA = packAFunc();
  const rows4 = rowsFunc("rows4", TILE_ROWS, fused, true);
  return [packFunc(), packA, rows4, rowsFunc("rows1", 1, fused, false), dotRowsFunc(fused), packRowsFunc(packA, rows4)];
});

/** The matmul kernels over this backend's heap, or null where WebAssembly SIMD is unavailable. */
export function gemmKernels(backend: WasmBackend): GemmKernels | null {
  return gemmModule.instance(heapMemory(backend));
}
