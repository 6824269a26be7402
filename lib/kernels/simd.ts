import { type AttentionRoutines, attentionBlockFunc, attentionBlockGradFunc } from "./simd-attention.js";
import { copyBlocksFunc, transposeFunc } from "./simd-copy.js";
import { adamWFunc, geluBwdFunc, geluFwdFunc, tanhFunc } from "./simd-elementwise.js";
import { layerNormBwdFunc, layerNormFwdFunc } from "./simd-layernorm.js";
import { dotProductsFunc, weightedRowsFunc } from "./simd-products.js";
import { expFunc, rowMaxSumExpFunc, scaledSoftmaxRowsFunc, softmaxBlockFunc, softmaxBwdFunc } from "./simd-softmax.js";
import { addRowsFunc, columnSumsFunc, scatterAddRowsFunc } from "./simd-sums.js";
import { relaxedSimdAvailable } from "./gemm.js";
import { KernelModule } from "./wasm-module.js";
import { type WasmBackend, heapMemory } from "./wasm-heap.js";

/**
 * Hand-written WebAssembly SIMD versions of the arithmetic-heavy element-wise loops (4 floats per
 * instruction), running on the TensorFlow.js wasm heap. Pointers are byte offsets into that heap; lengths
 * are element counts. The callers (gelu.ts, layernorm.ts, attention.ts, elementwise.ts) handle what these
 * do not: a tail of < 4 elements, rows whose length is not a multiple of 4; and they fall back to their
 * JavaScript loops if SIMD is unavailable.
 *
 * tanh uses the same rational approximation as the JavaScript kernels (Eigen's), here in float32, with
 * |u| > 7.9 mapped to ±1 exactly (tanh(7.9) is 1 to 3e-7).
 */
/** The softmax gradient's two routines (with and without `extra`): see SimdKernels.softmaxBwd. */
type SoftmaxGradient = (
  p: number,
  g: number,
  extra: number,
  rows: number,
  n: number,
  rowFloats: number,
  above: number,
  scale: number,
) => void;

export interface SimdKernels {
  /** y = e^x for n (multiple of 4) elements (Cephes' expf; 0 where e^x is below float32's normal range). */
  exp(x: number, y: number, n: number): void;
  /** y = tanh(x) for n (multiple of 4) elements. */
  tanh(x: number, y: number, n: number): void;
  /** y = ½ x (1 + t) with t = tanh(√(2/π)(x + 0.044715 x³)), which it writes too (for the gradient). */
  geluFwd(x: number, y: number, t: number, n: number): void;
  /** dx = dy · GELU'(x), given the forward pass's t. */
  geluBwd(x: number, t: number, dy: number, dx: number, n: number): void;
  /** LayerNorm of `rows` rows of C (multiple of 4) floats; writes y and each row's mean and 1/√(var + ε). */
  layerNormFwd(
    x: number,
    gamma: number,
    beta: number,
    y: number,
    mean: number,
    rstd: number,
    rows: number,
    C: number,
    eps: number,
  ): void;
  /**
   * dx of LayerNorm for `rows` rows, and each block of 32 rows' float32 sums of dy·x̂ and dy added into its slot
   * of blockG and blockB (C floats a slot, zeroed by the caller; the caller adds the slots up).
   */
  layerNormBwd(
    dy: number,
    x: number,
    gamma: number,
    mean: number,
    rstd: number,
    dx: number,
    blockG: number,
    blockB: number,
    rows: number,
    C: number,
  ): void;
  /**
   * Softmax of one attention block's rows, for the keys each query may see: for row i < rows, keys
   * j < min(keys, i + above + 1) of s (rows rowFloats apart), written to p (likewise); the rest of p's row,
   * k0 floats before the block and everything after the visible keys up to rowFloats − k0, becomes 0.
   * exp(x) as Cephes' expf (a degree-5 polynomial around a power of 2, float32 accuracy).
   */
  softmaxBlock(s: number, p: number, rows: number, keys: number, above: number, rowFloats: number, k0: number): void;
  /**
   * The softmax gradient, for row r < rows (rows rowFloats apart) over its visible keys j < min(n, r + above
   * + 1): g ← g + extra; g ← p ⊙ (g − Σ p ⊙ g) · scale.
   */
  softmaxBwd: SoftmaxGradient;
  /** The same without `extra` (ignored): g ← p ⊙ (g − Σ p ⊙ g) · scale. */
  softmaxBwdPlain: SoftmaxGradient;
  /** Per row of n floats at x: its max into maxOut[row] and Σ exp(x − max) into sumOut[row]. */
  rowMaxSumExp(x: number, maxOut: number, sumOut: number, rows: number, n: number): void;
  /** Per row of n floats: out = exp(x − lse[row]) · scale[row]. */
  scaledSoftmaxRows(x: number, lse: number, scale: number, out: number, rows: number, n: number): void;
  /** One block of attention, forward (simd-attention.ts `attentionBlockFunc`). */
  attentionBlock(
    q: number,
    k: number,
    v: number,
    p: number,
    o: number,
    rows: number,
    keys: number,
    hs: number,
    hv: number,
    Tk: number,
    above: number,
    k0: number,
    scale: number,
  ): void;
  /** One block of attention, backward (simd-attention.ts `attentionBlockGradFunc`). */
  attentionBlockGrad(
    dO: number,
    dP: number,
    q: number,
    k: number,
    v: number,
    p: number,
    dS: number,
    dq: number,
    dk: number,
    dv: number,
    rows: number,
    keys: number,
    hs: number,
    hv: number,
    Tk: number,
    above: number,
    scale: number,
  ): void;
  /**
   * Dot products of rows, for attention scores: c[i, j] = scale · Σ_t a[i, t] b[j, t] for i < m and
   * j < min(n, i + above + 1) (above = n: every j; above = 0: causal), t < k (a multiple of 4). Strides are
   * in floats: a[i, t] = a + 4 (i · aStride + t), b[j, t] likewise, c[i, j] = c + 4 (i · cStride + j).
   * Entries of c outside the range are left as they are.
   */
  dotProducts(
    a: number,
    b: number,
    c: number,
    m: number,
    n: number,
    k: number,
    aStride: number,
    bStride: number,
    cStride: number,
    above: number,
    scale: number,
  ): void;
  /**
   * Weighted sums of rows, for P·V and its gradients: c[i, :] = Σ_t w[i, t] x[t, :] over
   * max(0, i − below) ≤ t < min(k, i + above + 1), for i < m and n (a multiple of 4) columns. w has a row and
   * a column stride, so w can be read transposed (wRowStride 1); x and c are rows of xStride, cStride floats.
   */
  weightedRows(
    w: number,
    x: number,
    c: number,
    m: number,
    n: number,
    k: number,
    wRowStride: number,
    wColStride: number,
    xStride: number,
    cStride: number,
    below: number,
    above: number,
  ): void;
  /**
   * Column sums of a rows × width matrix (width a multiple of 4; rows `stride` floats apart, so it can be a
   * band of columns of a wider one), out[j] = Σ_r x[r, j], added up in float64 (acc64: scratch for width
   * doubles) four rows at a time, exactly as reduce.ts's `sumRows` does.
   */
  columnSums(x: number, out: number, acc64: number, rows: number, width: number, stride: number): void;
  /**
   * out[ids[r], :] += x[r, :] for rows r < rows of `width` floats, skipping ids outside [0, segments): the
   * scatter-add of an embedding gradient (UnsortedSegmentSum). ids is an int32 array.
   */
  scatterAddRows(x: number, ids: number, out: number, rows: number, width: number, segments: number): void;
  /**
   * Copies blocks of rows of 32-bit words: for o < outer and r < rows, the row of `rowBytes` bytes (a
   * multiple of 4) at src + o · srcOuter + r · srcRow goes to dst + o · dstOuter + r · dstRow (all in bytes).
   * What Transpose (when the innermost axis stays innermost), SplitV and Concat do.
   */
  copyBlocks(
    src: number,
    dst: number,
    outer: number,
    srcOuter: number,
    dstOuter: number,
    rows: number,
    rowBytes: number,
    srcRow: number,
    dstRow: number,
  ): void;
  /**
   * dst (cols × rows) = srcᵀ for a rows × cols matrix, both multiples of 4, in 4 × 4 blocks; src's rows are
   * srcStride floats apart, dst's dstStride (a part of a bigger matrix: its columns from some j0).
   */
  transpose(src: number, dst: number, rows: number, cols: number, srcStride: number, dstStride: number): void;
  /** AdamW for n (multiple of 4) elements: see adamw.ts. */
  adamW(
    w: number,
    m: number,
    v: number,
    g: number,
    wOut: number,
    mOut: number,
    vOut: number,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    decay: number,
    c1: number,
    c2: number,
  ): void;
}

export const simdModule = new KernelModule<SimdKernels>("SIMD kernels", () => simdFuncs(relaxedSimdAvailable()));

/** The module's functions; `fused`: attention's products with fused multiply-adds (relaxed SIMD). */
function simdFuncs(fused: boolean) {
  const attention: AttentionRoutines = {
    dotProducts: dotProductsFunc(fused),
    weightedRows: weightedRowsFunc(fused),
    softmaxBlock: softmaxBlockFunc(),
    softmaxBwd: softmaxBwdFunc(true),
    softmaxBwdPlain: softmaxBwdFunc(false),
  };
  return [
    tanhFunc(),
    geluFwdFunc(),
    geluBwdFunc(),
    layerNormFwdFunc(),
    layerNormBwdFunc(),
    expFunc(),
    rowMaxSumExpFunc(),
    scaledSoftmaxRowsFunc(),
    ...Object.values(attention),
    attentionBlockFunc(attention),
    attentionBlockGradFunc(attention),
    adamWFunc(),
    columnSumsFunc(),
    scatterAddRowsFunc(),
    transposeFunc(),
    copyBlocksFunc(),
    addRowsFunc(),
  ];
}

/**
 * The SIMD kernels over this backend's heap, or null where WebAssembly SIMD or the heap's Memory object is
 * unavailable (the callers then use their JavaScript loops). GPT_WASM_SIMD_KERNELS=0 turns them off.
 */
export function simdKernels(backend: WasmBackend): SimdKernels | null {
  return simdModule.instance(heapMemory(backend));
}
