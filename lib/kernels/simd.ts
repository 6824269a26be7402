import { Func, KernelModule } from "./wasm-asm.js";
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
export interface SimdKernels {
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
   * dx of LayerNorm, and Σ_rows dy·x̂, Σ_rows dy added into float64 accumulators dgamma64, dbeta64 (C each);
   * `block` is scratch for C float32 partial sums, flushed to the float64 accumulators every 32 rows.
   */
  layerNormBwd(
    dy: number,
    x: number,
    gamma: number,
    mean: number,
    rstd: number,
    dx: number,
    dgamma64: number,
    dbeta64: number,
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
  /** Per row of n floats: g ← g + extra; g ← p ⊙ (g − Σ p ⊙ g) · scale. */
  softmaxBwd(p: number, g: number, extra: number, rows: number, n: number, scale: number): void;
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

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const CUBIC = 0.044715;
const CLAMP = 7.905311107635498; // the float64 nearest 7.90531110763549805
const A = [
  4.89352455891786e-3, 6.37261928875436e-4, 1.48572235717979e-5, 5.12229709037114e-8, -8.60467152213735e-11,
  2.00018790482477e-13, -2.76076847742355e-16,
];
const B = [4.89352518554385e-3, 2.268434632439e-3, 1.18534705686654e-4, 1.19825839466702e-6];

/** Pushes tanh(u) (u: v128 local) with the saturation fix; uses scratch v128 locals. */
function emitTanh(f: Func, u: number, s: { u2: number; p: number; q: number }): void {
  // u2 = u² (no clamp of u: lanes with |u| > CLAMP, where the polynomials may overflow, are replaced below)
  f.get(u).get(u).vmul().set(s.u2);
  // p = u · (A1 + u2·(A3 + u2·(A5 + u2·(A7 + u2·(A9 + u2·(A11 + u2·A13))))))
  f.f32(A[6]).splat();
  for (let k = 5; k >= 0; k--) f.get(s.u2).vmul().f32(A[k]).splat().vadd();
  f.get(u).vmul().set(s.p);
  // q = B0 + u2·(B2 + u2·(B4 + u2·B6))
  f.f32(B[3]).splat();
  for (let k = 2; k >= 0; k--) f.get(s.u2).vmul().f32(B[k]).splat().vadd();
  f.set(s.q);
  // t = p / q, or ±1 (1 with u's sign bit) where |u| > CLAMP
  f.get(u).f32(-0).splat().vand().f32(1).splat().vor();
  f.get(s.p).get(s.q).vdiv();
  f.get(u).vabs().f32(CLAMP).splat().vgt();
  f.vbitselect();
}

function scratch(f: Func) {
  return { u2: f.local("v128"), p: f.local("v128"), q: f.local("v128") };
}

function tanhFunc(): Func {
  const f = new Func("tanh", 3);
  const [x, y, n] = [0, 1, 2];
  const i = f.local("i32");
  const u = f.local("v128");
  const s = scratch(f);
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(n).i32(2).shl(),
    16,
    () => {
      f.get(x).get(i).add().load().set(u);
      f.get(y).get(i).add();
      emitTanh(f, u, s);
      f.store();
    },
  );
  return f;
}

function geluFwdFunc(): Func {
  const f = new Func("geluFwd", 4);
  const [x, y, tOut, n] = [0, 1, 2, 3];
  const i = f.local("i32");
  const v = f.local("v128");
  const u = f.local("v128");
  const t = f.local("v128");
  const s = scratch(f);
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(n).i32(2).shl(),
    16,
    () => {
      f.get(x).get(i).add().load().set(v);
      // u = √(2/π) (v + 0.044715 v³)
      f.get(v)
        .get(v)
        .vmul()
        .get(v)
        .vmul()
        .f32(CUBIC)
        .splat()
        .vmul()
        .get(v)
        .vadd()
        .f32(SQRT_2_OVER_PI)
        .splat()
        .vmul()
        .set(u);
      emitTanh(f, u, s);
      f.set(t);
      f.get(tOut).get(i).add().get(t).store();
      // y = 0.5 v (1 + t)
      f.get(y).get(i).add();
      f.get(t).f32(1).splat().vadd().get(v).vmul().f32(0.5).splat().vmul();
      f.store();
    },
  );
  return f;
}

function geluBwdFunc(): Func {
  const f = new Func("geluBwd", 5);
  const [x, tIn, dy, dx, n] = [0, 1, 2, 3, 4];
  const i = f.local("i32");
  const v = f.local("v128");
  const v2 = f.local("v128");
  const t = f.local("v128");
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(n).i32(2).shl(),
    16,
    () => {
      f.get(x).get(i).add().load().set(v);
      f.get(v).get(v).vmul().set(v2);
      f.get(tIn).get(i).add().load().set(t);
      f.get(dx).get(i).add();
      // 0.5 (1 + t) + 0.5 v (1 − t²) √(2/π) (1 + 3·0.044715 v²)
      f.get(t).f32(1).splat().vadd().f32(0.5).splat().vmul();
      f.f32(1).splat().get(t).get(t).vmul().vsub();
      f.get(v).vmul();
      f.get(v2)
        .f32(3 * CUBIC)
        .splat()
        .vmul()
        .f32(1)
        .splat()
        .vadd();
      f.vmul()
        .f32(0.5 * SQRT_2_OVER_PI)
        .splat()
        .vmul();
      f.vadd();
      f.get(dy).get(i).add().load().vmul();
      f.store();
    },
  );
  return f;
}

function layerNormFwdFunc(): Func {
  const f = new Func("layerNormFwd", 9, ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "f32"]);
  const [x, gamma, beta, y, meanPtr, rstdPtr, rows, C, eps] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const r = f.local("i32");
  const j = f.local("i32");
  const rowBytes = f.local("i32");
  const xr = f.local("i32");
  const yr = f.local("i32");
  const acc = f.local("v128");
  const d = f.local("v128");
  const mean = f.local("f32");
  const rstd = f.local("f32");
  const meanV = f.local("v128");
  const rstdV = f.local("v128");
  f.get(C).i32(2).shl().set(rowBytes);
  f.forRange(
    r,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      f.get(r).get(rowBytes).mul().tee(xr).get(y).add().set(yr);
      f.get(xr).get(x).add().set(xr);
      // mean
      f.f32(0).splat().set(acc);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(rowBytes),
        16,
        () => {
          f.get(acc).get(xr).get(j).add().load().vadd().set(acc);
        },
      );
      f.horizontalSum(acc).get(C).f64FromI32().f32FromF64().f32Div().tee(mean).splat().set(meanV);
      // variance (two-pass), rstd
      f.f32(0).splat().set(acc);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(rowBytes),
        16,
        () => {
          f.get(xr).get(j).add().load().get(meanV).vsub().tee(d).get(d).vmul().get(acc).vadd().set(acc);
        },
      );
      f.f32(1)
        .horizontalSum(acc)
        .get(C)
        .f64FromI32()
        .f32FromF64()
        .f32Div()
        .get(eps)
        .f32Add()
        .f32Sqrt()
        .f32Div()
        .tee(rstd)
        .splat()
        .set(rstdV);
      // y = (x − mean) · rstd · γ + β
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(rowBytes),
        16,
        () => {
          f.get(yr).get(j).add();
          f.get(xr).get(j).add().load().get(meanV).vsub().get(rstdV).vmul();
          f.get(gamma).get(j).add().load().vmul();
          f.get(beta).get(j).add().load().vadd();
          f.store();
        },
      );
      f.get(meanPtr).get(r).i32(2).shl().add().get(mean).f32Store();
      f.get(rstdPtr).get(r).i32(2).shl().add().get(rstd).f32Store();
    },
  );
  return f;
}

function layerNormBwdFunc(): Func {
  const f = new Func("layerNormBwd", 12);
  const [dy, x, gamma, meanPtr, rstdPtr, dx, dgamma64, dbeta64, blockG, blockB, rows, C] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
  ];
  const r = f.local("i32");
  const j = f.local("i32");
  const rowBytes = f.local("i32");
  const off = f.local("i32");
  const m = f.local("v128");
  const s = f.local("v128");
  const xhat = f.local("v128");
  const d = f.local("v128");
  const gc = f.local("v128");
  const sumG = f.local("v128");
  const sumGX = f.local("v128");
  const meanG = f.local("v128");
  const meanGX = f.local("v128");
  const invC = f.local("f32");
  f.get(C).i32(2).shl().set(rowBytes);
  f.f32(1).get(C).f64FromI32().f32FromF64().f32Div().set(invC);
  // flush the float32 block sums into the float64 accumulators (and zero them)
  const flush = () => {
    f.forRange(
      j,
      () => f.i32(0),
      () => f.get(C),
      1,
      () => {
        f.get(dgamma64).get(j).i32(3).shl().add().tee(off);
        f.get(off).f64Load().get(blockG).get(j).i32(2).shl().add().f32Load().f64FromF32().f64Add().f64Store();
        f.get(dbeta64).get(j).i32(3).shl().add().tee(off);
        f.get(off).f64Load().get(blockB).get(j).i32(2).shl().add().f32Load().f64FromF32().f64Add().f64Store();
        f.get(blockG).get(j).i32(2).shl().add().f32(0).f32Store();
        f.get(blockB).get(j).i32(2).shl().add().f32(0).f32Store();
      },
    );
  };
  f.forRange(
    r,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      f.get(meanPtr).get(r).i32(2).shl().add().f32Load().splat().set(m);
      f.get(rstdPtr).get(r).i32(2).shl().add().f32Load().splat().set(s);
      f.f32(0).splat().set(sumG);
      f.f32(0).splat().set(sumGX);
      // pass 1: Σ g, Σ g·x̂ (g = dy·γ), and the block sums of dy·x̂ and dy
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(rowBytes),
        16,
        () => {
          f.get(r).get(rowBytes).mul().get(j).add().set(off);
          f.get(x).get(off).add().load().get(m).vsub().get(s).vmul().set(xhat);
          f.get(dy).get(off).add().load().set(d);
          f.get(d).get(gamma).get(j).add().load().vmul().set(gc);
          f.get(sumG).get(gc).vadd().set(sumG);
          f.get(sumGX).get(gc).get(xhat).vmul().vadd().set(sumGX);
          f.get(blockG).get(j).add();
          f.get(blockG).get(j).add().load().get(d).get(xhat).vmul().vadd();
          f.store();
          f.get(blockB).get(j).add();
          f.get(blockB).get(j).add().load().get(d).vadd();
          f.store();
        },
      );
      f.horizontalSum(sumG).get(invC).f32Mul().splat().set(meanG);
      f.horizontalSum(sumGX).get(invC).f32Mul().splat().set(meanGX);
      // pass 2: dx = s · (g − mean(g) − x̂ · mean(g·x̂))
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(rowBytes),
        16,
        () => {
          f.get(r).get(rowBytes).mul().get(j).add().set(off);
          f.get(dx).get(off).add();
          f.get(dy).get(off).add().load().get(gamma).get(j).add().load().vmul();
          f.get(meanG).vsub();
          f.get(x).get(off).add().load().get(m).vsub().get(s).vmul().get(meanGX).vmul().vsub();
          f.get(s).vmul();
          f.store();
        },
      );
      // every 32 rows (and after the last), move the block sums into float64
      f.get(r).i32(31).and().i32(31).sub().eqz();
      f.get(r).i32(1).add().get(rows).sub().eqz();
      f.or();
      f.if_(flush);
    },
  );
  return f;
}

// exp(x) = 2ⁿ · e^r with n = round(x log₂e), r = x − n ln 2 (ln 2 in two parts, for exactness), e^r by
// Cephes' expf polynomial; x is first kept ≥ −87.3, where e^x still is a normal float32.
const LOG2E = Math.LOG2E;
const LN2_HIGH = 0.693359375;
const LN2_LOW = -2.1219444e-4;
const EXP_POLYNOMIAL = [
  1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
];
const EXP_MIN = -87.33654;

/** Pushes e^x for the 4 floats of v128 local x; n and r are v128 scratch locals. */
function emitExp(f: Func, x: number, n: number, r: number): void {
  f.get(x).f32(EXP_MIN).splat().vpmax().set(r); // pmax(x, min) keeps a NaN x
  f.get(r).f32(LOG2E).splat().vmul().vnearest().set(n);
  f.get(r).get(n).f32(LN2_HIGH).splat().vmul().vsub().get(n).f32(LN2_LOW).splat().vmul().vsub().set(r);
  f.f32(EXP_POLYNOMIAL[0]).splat();
  for (const c of EXP_POLYNOMIAL.slice(1)) f.get(r).vmul().f32(c).splat().vadd();
  f.get(r).get(r).vmul().vmul().get(r).vadd().f32(1).splat().vadd();
  // × 2ⁿ: the float with exponent bits n + 127
  f.get(n).vtruncToInt().i32(127).vintSplat().vintAdd().i32(23).vintShl();
  f.vmul();
}

/** The same for one float (f32 locals x, n, r). */
function emitExpScalar(f: Func, x: number, n: number, r: number): void {
  f.get(x).f32(EXP_MIN).f32Max().set(r);
  f.get(r).f32(LOG2E).f32Mul().f32Nearest().set(n);
  f.get(r).get(n).f32(LN2_HIGH).f32Mul().f32Sub().get(n).f32(LN2_LOW).f32Mul().f32Sub().set(r);
  f.f32(EXP_POLYNOMIAL[0]);
  for (const c of EXP_POLYNOMIAL.slice(1)) f.get(r).f32Mul().f32(c).f32Add();
  f.get(r).get(r).f32Mul().f32Mul().get(r).f32Add().f32(1).f32Add();
  f.get(n).i32FromF32().i32(127).add().i32(23).shl().f32Bits();
  f.f32Mul();
}

function softmaxBlockFunc(): Func {
  const f = new Func("softmaxBlock", 7);
  const [s, p, rows, keys, above, rowFloats, k0] = Array.from({ length: 7 }, (_, i) => i);
  const [i, j, visibleBytes, vectorBytes, rowBytes, sRow, pRow, pLine, end] = Array.from({ length: 9 }, () =>
    f.local("i32"),
  );
  const [x, n, r, e, maxV, sumV] = Array.from({ length: 6 }, () => f.local("v128"));
  const [xs, ns, rs, es, max, sum] = Array.from({ length: 6 }, () => f.local("f32"));
  f.get(rowFloats).i32(2).shl().set(rowBytes);
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      f.get(s).get(i).get(rowBytes).mul().add().set(sRow);
      f.get(p).get(i).get(rowBytes).mul().add().tee(pRow).get(k0).i32(2).shl().sub().set(pLine);
      // visible keys: min(keys, i + above + 1), in bytes; the vector part, a multiple of 16 bytes
      f.get(i).get(above).add().i32(1).add().tee(visibleBytes).get(keys).get(visibleBytes).get(keys).ltU().select();
      f.i32(2).shl().tee(visibleBytes).i32(-16).and().set(vectorBytes);
      // zeros: the row before the block, and after the visible keys
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(k0).i32(2).shl(),
        4,
        () => f.get(pLine).get(j).add().f32(0).f32Store(),
      );
      f.get(rowFloats).get(k0).sub().i32(2).shl().set(end);
      f.forRange(
        j,
        () => f.get(visibleBytes),
        () => f.get(end),
        4,
        () => f.get(pRow).get(j).add().f32(0).f32Store(),
      );
      // max
      f.f32(-Infinity).splat().set(maxV);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(vectorBytes),
        16,
        () => f.get(maxV).get(sRow).get(j).add().load().vpmax().set(maxV),
      );
      f.get(maxV).lane(0).get(maxV).lane(1).f32Max().get(maxV).lane(2).get(maxV).lane(3).f32Max().f32Max().set(max);
      f.forRange(
        j,
        () => f.get(vectorBytes),
        () => f.get(visibleBytes),
        4,
        () => f.get(max).get(sRow).get(j).add().f32Load().f32Max().set(max),
      );
      // e = exp(s − max) into p, and their sum
      f.f32(0).splat().set(sumV);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(vectorBytes),
        16,
        () => {
          f.get(sRow).get(j).add().load().get(max).splat().vsub().set(x);
          emitExp(f, x, n, r);
          f.tee(e).get(sumV).vadd().set(sumV);
          f.get(pRow).get(j).add().get(e).store();
        },
      );
      f.horizontalSum(sumV).set(sum);
      f.forRange(
        j,
        () => f.get(vectorBytes),
        () => f.get(visibleBytes),
        4,
        () => {
          f.get(sRow).get(j).add().f32Load().get(max).f32Sub().set(xs);
          emitExpScalar(f, xs, ns, rs);
          f.tee(es).get(sum).f32Add().set(sum);
          f.get(pRow).get(j).add().get(es).f32Store();
        },
      );
      // ÷ sum
      f.f32(1).get(sum).f32Div().set(sum);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(vectorBytes),
        16,
        () => {
          f.get(pRow).get(j).add().get(pRow).get(j).add().load().get(sum).splat().vmul().store();
        },
      );
      f.forRange(
        j,
        () => f.get(vectorBytes),
        () => f.get(visibleBytes),
        4,
        () => {
          f.get(pRow).get(j).add().get(pRow).get(j).add().f32Load().get(sum).f32Mul().f32Store();
        },
      );
    },
  );
  return f;
}

function softmaxBwdFunc(): Func {
  const f = new Func("softmaxBwd", 6, ["i32", "i32", "i32", "i32", "i32", "f32"]);
  const [p, g, extra, rows, n, scale] = [0, 1, 2, 3, 4, 5];
  const [r, j, rowBytes, vectorBytes, off] = Array.from({ length: 5 }, () => f.local("i32"));
  const dot = f.local("v128");
  const gj = f.local("v128");
  const dotV = f.local("v128");
  const scaleV = f.local("v128");
  const tailDot = f.local("f32");
  const gs = f.local("f32");
  f.get(n).i32(2).shl().set(rowBytes);
  f.get(n).i32(-4).and().i32(2).shl().set(vectorBytes); // the row's first n − n % 4 floats, 4 at a time
  f.get(scale).splat().set(scaleV);
  f.forRange(
    r,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      f.f32(0).splat().set(dot);
      f.f32(0).set(tailDot);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(vectorBytes),
        16,
        () => {
          f.get(r).get(rowBytes).mul().get(j).add().set(off);
          f.get(g).get(off).add().load().get(extra).get(off).add().load().vadd().set(gj);
          f.get(g).get(off).add().get(gj).store();
          f.get(dot).get(p).get(off).add().load().get(gj).vmul().vadd().set(dot);
        },
      );
      f.forRange(
        j,
        () => f.get(vectorBytes),
        () => f.get(rowBytes),
        4,
        () => {
          f.get(r).get(rowBytes).mul().get(j).add().set(off);
          f.get(g).get(off).add().f32Load().get(extra).get(off).add().f32Load().f32Add().set(gs);
          f.get(g).get(off).add().get(gs).f32Store();
          f.get(tailDot).get(p).get(off).add().f32Load().get(gs).f32Mul().f32Add().set(tailDot);
        },
      );
      f.horizontalSum(dot).get(tailDot).f32Add().splat().set(dotV);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(vectorBytes),
        16,
        () => {
          f.get(r).get(rowBytes).mul().get(j).add().set(off);
          f.get(g).get(off).add();
          f.get(g).get(off).add().load().get(dotV).vsub().get(p).get(off).add().load().vmul().get(scaleV).vmul();
          f.store();
        },
      );
      f.forRange(
        j,
        () => f.get(vectorBytes),
        () => f.get(rowBytes),
        4,
        () => {
          f.get(r).get(rowBytes).mul().get(j).add().set(off);
          f.get(g).get(off).add();
          f.get(g)
            .get(off)
            .add()
            .f32Load()
            .get(dotV)
            .lane(0)
            .f32Sub()
            .get(p)
            .get(off)
            .add()
            .f32Load()
            .f32Mul()
            .get(scale)
            .f32Mul();
          f.f32Store();
        },
      );
    },
  );
  return f;
}

function adamWFunc(): Func {
  const types = [...Array(8).fill("i32"), ...Array(7).fill("f32")] as Array<"i32" | "f32">;
  const f = new Func("adamW", 15, types);
  const [w, m, v, g, wOut, mOut, vOut, n, lr, b1, b2, eps, decay, c1, c2] = Array.from({ length: 15 }, (_, i) => i);
  const i = f.local("i32");
  const gv = f.local("v128");
  const mv = f.local("v128");
  const vv = f.local("v128");
  const splat = (p: number) => {
    const local = f.local("v128");
    f.get(p).splat().set(local);
    return local;
  };
  const [lrV, b1V, b2V, epsV, decayV] = [lr, b1, b2, eps, decay].map(splat);
  const oneMinusB1 = f.local("v128");
  const oneMinusB2 = f.local("v128");
  const invC1 = f.local("v128");
  const invC2 = f.local("v128");
  f.f32(1).get(b1).f32Sub().splat().set(oneMinusB1);
  f.f32(1).get(b2).f32Sub().splat().set(oneMinusB2);
  f.f32(1).get(c1).f32Div().splat().set(invC1);
  f.f32(1).get(c2).f32Div().splat().set(invC2);
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(n).i32(2).shl(),
    16,
    () => {
      f.get(g).get(i).add().load().set(gv);
      // m' = β1 m + (1 − β1) g
      f.get(m).get(i).add().load().get(b1V).vmul().get(gv).get(oneMinusB1).vmul().vadd().set(mv);
      // v' = β2 v + (1 − β2) g²
      f.get(v).get(i).add().load().get(b2V).vmul().get(gv).get(gv).vmul().get(oneMinusB2).vmul().vadd().set(vv);
      f.get(mOut).get(i).add().get(mv).store();
      f.get(vOut).get(i).add().get(vv).store();
      // w' = w · decay − lr · (m' / c1) / (√(v' / c2) + ε)
      f.get(wOut).get(i).add();
      f.get(w).get(i).add().load().get(decayV).vmul();
      f.get(mv).get(invC1).vmul();
      f.get(vv).get(invC2).vmul().vsqrt().get(epsV).vadd();
      f.vdiv().get(lrV).vmul().vsub();
      f.store();
    },
  );
  return f;
}

/** Pushes min(limit, i + above + 1) (unsigned), the end of row i's range. */
function rangeEnd(f: Func, i: number, above: number, limit: number): void {
  const end = f.local("i32");
  f.get(i).get(above).add().i32(1).add().set(end);
  f.get(end).get(limit).get(end).get(limit).ltU().select();
}

function dotProductsFunc(): Func {
  const f = new Func("dotProducts", 11, [...Array(10).fill("i32"), "f32"] as Array<"i32" | "f32">);
  const [a, b, c, m, n, k, aStride, bStride, cStride, above, scale] = Array.from({ length: 11 }, (_, i) => i);
  const [i, j, t, jEnd, jEnd4, kBytes, bStep, aRow, cRow, b0, b1, b2, b3] = Array.from({ length: 13 }, () =>
    f.local("i32"),
  );
  const acc = Array.from({ length: 4 }, () => f.local("v128"));
  const [av, u01, u23, scaleV] = Array.from({ length: 4 }, () => f.local("v128"));
  f.get(k).i32(2).shl().set(kBytes);
  f.get(bStride).i32(2).shl().set(bStep);
  f.get(scale).splat().set(scaleV);
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(m),
    1,
    () => {
      rangeEnd(f, i, above, n);
      f.tee(jEnd).i32(-4).and().set(jEnd4);
      f.get(a).get(i).get(aStride).mul().i32(2).shl().add().set(aRow);
      f.get(c).get(i).get(cStride).mul().i32(2).shl().add().set(cRow);
      // four keys at a time: four independent sums share each load of the query row
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(jEnd4),
        4,
        () => {
          f.get(b).get(j).get(bStride).mul().i32(2).shl().add().set(b0);
          f.get(b0).get(bStep).add().set(b1);
          f.get(b1).get(bStep).add().set(b2);
          f.get(b2).get(bStep).add().set(b3);
          for (const x of acc) f.f32(0).splat().set(x);
          f.forRange(
            t,
            () => f.i32(0),
            () => f.get(kBytes),
            16,
            () => {
              f.get(aRow).get(t).add().load().set(av);
              [b0, b1, b2, b3].forEach((row, r) =>
                f.get(acc[r]).get(av).get(row).get(t).add().load().vmul().vadd().set(acc[r]),
              );
            },
          );
          // [Σ acc0, Σ acc1, Σ acc2, Σ acc3] by two rounds of pairwise shuffles and adds
          f.get(acc[0])
            .get(acc[1])
            .shuffle32([0, 4, 1, 5])
            .get(acc[0])
            .get(acc[1])
            .shuffle32([2, 6, 3, 7])
            .vadd()
            .set(u01);
          f.get(acc[2])
            .get(acc[3])
            .shuffle32([0, 4, 1, 5])
            .get(acc[2])
            .get(acc[3])
            .shuffle32([2, 6, 3, 7])
            .vadd()
            .set(u23);
          f.get(cRow).get(j).i32(2).shl().add();
          f.get(u01)
            .get(u23)
            .shuffle32([0, 1, 4, 5])
            .get(u01)
            .get(u23)
            .shuffle32([2, 3, 6, 7])
            .vadd()
            .get(scaleV)
            .vmul();
          f.store();
        },
      );
      // the last jEnd % 4 keys one at a time
      f.forRange(
        j,
        () => f.get(jEnd4),
        () => f.get(jEnd),
        1,
        () => {
          f.get(b).get(j).get(bStride).mul().i32(2).shl().add().set(b0);
          f.f32(0).splat().set(acc[0]);
          f.forRange(
            t,
            () => f.i32(0),
            () => f.get(kBytes),
            16,
            () => {
              f.get(acc[0]).get(aRow).get(t).add().load().get(b0).get(t).add().load().vmul().vadd().set(acc[0]);
            },
          );
          f.get(cRow).get(j).i32(2).shl().add();
          f.horizontalSum(acc[0]).get(scale).f32Mul();
          f.f32Store();
        },
      );
    },
  );
  return f;
}

function weightedRowsFunc(): Func {
  const f = new Func("weightedRows", 12);
  const [w, x, c, m, n, k, wRowStride, wColStride, xStride, cStride, below, above] = Array.from(
    { length: 12 },
    (_, i) => i,
  );
  const [i, j, t, tStart, tEnd, nBytes, nBytes16, wPtr, xPtr, wStep, xStep, cRow] = Array.from({ length: 12 }, () =>
    f.local("i32"),
  );
  const acc = Array.from({ length: 4 }, () => f.local("v128"));
  const weight = f.local("v128");
  f.get(n).i32(2).shl().tee(nBytes).i32(-64).and().set(nBytes16);
  f.get(wColStride).i32(2).shl().set(wStep);
  f.get(xStride).i32(2).shl().set(xStep);
  // one column chunk of `width` floats (4 or 16) of output row i: Σ_t w[i, t] x[t, j : j + width]
  const chunk = (vectors: number) => {
    for (let v = 0; v < vectors; v++) f.f32(0).splat().set(acc[v]);
    f.get(w).get(i).get(wRowStride).mul().get(tStart).get(wColStride).mul().add().i32(2).shl().add().set(wPtr);
    f.get(x).get(tStart).get(xStride).mul().i32(2).shl().add().get(j).add().set(xPtr);
    f.forRange(
      t,
      () => f.get(tStart),
      () => f.get(tEnd),
      1,
      () => {
        f.get(wPtr).f32Load().splat().set(weight);
        for (let v = 0; v < vectors; v++)
          f.get(acc[v])
            .get(weight)
            .get(xPtr)
            .load(16 * v)
            .vmul()
            .vadd()
            .set(acc[v]);
        f.get(wPtr).get(wStep).add().set(wPtr);
        f.get(xPtr).get(xStep).add().set(xPtr);
      },
    );
    for (let v = 0; v < vectors; v++)
      f.get(cRow)
        .get(j)
        .add()
        .get(acc[v])
        .store(16 * v);
  };
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(m),
    1,
    () => {
      // tStart = i > below ? i − below : 0
      f.get(i).get(below).sub().i32(0).get(below).get(i).ltU().select().set(tStart);
      rangeEnd(f, i, above, k);
      f.set(tEnd);
      f.get(c).get(i).get(cStride).mul().i32(2).shl().add().set(cRow);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(nBytes16),
        64,
        () => chunk(4),
      ); // 16 columns: four independent sums
      f.forRange(
        j,
        () => f.get(nBytes16),
        () => f.get(nBytes),
        16,
        () => chunk(1),
      );
    },
  );
  return f;
}

function columnSumsFunc(): Func {
  const f = new Func("columnSums", 6);
  const [x, out, acc64, rows, width, stride] = Array.from({ length: 6 }, (_, i) => i);
  const [r, j, rowBytes, strideBytes, rows4, src, acc] = Array.from({ length: 7 }, () => f.local("i32"));
  const v = Array.from({ length: 4 }, () => f.local("v128"));
  f.get(width).i32(2).shl().set(rowBytes);
  f.get(stride).i32(2).shl().set(strideBytes);
  f.get(rows).i32(-4).and().set(rows4);
  f.forRange(
    j,
    () => f.i32(0),
    () => f.get(width).i32(3).shl(),
    16,
    () => f.get(acc64).get(j).add().f32(0).splat().store(),
  );
  // acc += promote(a) for the float64 pairs of 4 floats: low lanes to acc, high lanes to acc + 16
  const addHalves = (sum: () => void, half: "low" | "high") => {
    f.get(acc);
    f.get(acc).load(half === "low" ? 0 : 16);
    sum();
    f.f64x2Add();
    f.store(half === "low" ? 0 : 16);
  };
  const promoted = (vector: number, half: "low" | "high") => {
    f.get(vector);
    if (half === "high") f.get(vector).shuffle32([2, 3, 0, 1]);
    f.promoteLow();
  };
  // four rows at a time: acc += ((x0 + x1) + x2) + x3, in float64 (sumRows' order)
  f.forRange(
    r,
    () => f.i32(0),
    () => f.get(rows4),
    4,
    () => {
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(rowBytes),
        16,
        () => {
          f.get(x).get(r).get(strideBytes).mul().add().get(j).add().set(src);
          for (let k = 0; k < 4; k++) f.get(src).load(0).set(v[k]).get(src).get(strideBytes).add().set(src);
          f.get(acc64).get(j).i32(1).shl().add().set(acc);
          for (const half of ["low", "high"] as const) {
            addHalves(() => {
              promoted(v[0], half);
              for (let k = 1; k < 4; k++) {
                promoted(v[k], half);
                f.f64x2Add();
              }
            }, half);
          }
        },
      );
    },
  );
  f.forRange(
    r,
    () => f.get(rows4),
    () => f.get(rows),
    1,
    () => {
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(rowBytes),
        16,
        () => {
          f.get(x).get(r).get(strideBytes).mul().add().get(j).add().load().set(v[0]);
          f.get(acc64).get(j).i32(1).shl().add().set(acc);
          for (const half of ["low", "high"] as const) addHalves(() => promoted(v[0], half), half);
        },
      );
    },
  );
  f.forRange(
    j,
    () => f.i32(0),
    () => f.get(rowBytes),
    4,
    () => {
      f.get(out).get(j).add();
      f.get(acc64).get(j).i32(1).shl().add().f64Load().f32FromF64();
      f.f32Store();
    },
  );
  return f;
}

/**
 * One row of floats: out[i] = a[i] + b[i] for byte offsets i < rowBytes (pointers and counts are i32 locals),
 * 4 at a time up to vectorBytes, then one at a time; i is the loop's local.
 */
function emitRowSum(
  f: Func,
  out: number,
  a: number,
  b: number,
  i: number,
  vectorBytes: number,
  rowBytes: number,
): void {
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(vectorBytes),
    16,
    () => {
      f.get(out).get(i).add();
      f.get(a).get(i).add().load().get(b).get(i).add().load().vadd();
      f.store();
    },
  );
  f.forRange(
    i,
    () => f.get(vectorBytes),
    () => f.get(rowBytes),
    4,
    () => {
      f.get(out).get(i).add();
      f.get(a).get(i).add().f32Load().get(b).get(i).add().f32Load().f32Add();
      f.f32Store();
    },
  );
}

function addRowsFunc(): Func {
  const f = new Func("addRows", 6);
  const [a, b, out, rows, width, bStride] = [0, 1, 2, 3, 4, 5];
  const [r, i, vectorEnd, rowBytes, bRowBytes, aRow, bRow, outRow] = Array.from({ length: 8 }, () => f.local("i32"));
  f.get(width).i32(2).shl().set(rowBytes);
  f.get(bStride).i32(2).shl().set(bRowBytes);
  f.get(rowBytes).i32(-16).and().set(vectorEnd);
  f.get(a).set(aRow);
  f.get(b).set(bRow);
  f.get(out).set(outRow);
  f.forRange(
    r,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      emitRowSum(f, outRow, aRow, bRow, i, vectorEnd, rowBytes);
      f.get(aRow).get(rowBytes).add().set(aRow);
      f.get(bRow).get(bRowBytes).add().set(bRow);
      f.get(outRow).get(rowBytes).add().set(outRow);
    },
  );
  return f;
}

function copyBlocksFunc(): Func {
  const f = new Func("copyBlocks", 9);
  const [src, dst, outer, srcOuter, dstOuter, rows, rowBytes, srcRow, dstRow] = Array.from({ length: 9 }, (_, i) => i);
  const [o, r, byte, from, to, vectorBytes] = Array.from({ length: 6 }, () => f.local("i32"));
  f.get(rowBytes).i32(-16).and().set(vectorBytes);
  f.forRange(
    o,
    () => f.i32(0),
    () => f.get(outer),
    1,
    () => {
      f.get(src).get(o).get(srcOuter).mul().add().set(from);
      f.get(dst).get(o).get(dstOuter).mul().add().set(to);
      f.forRange(
        r,
        () => f.i32(0),
        () => f.get(rows),
        1,
        () => {
          f.forRange(
            byte,
            () => f.i32(0),
            () => f.get(vectorBytes),
            16,
            () => {
              f.get(to).get(byte).add().get(from).get(byte).add().load().store();
            },
          );
          f.forRange(
            byte,
            () => f.get(vectorBytes),
            () => f.get(rowBytes),
            4,
            () => {
              f.get(to).get(byte).add().get(from).get(byte).add().i32Load().i32Store();
            },
          );
          f.get(from).get(srcRow).add().set(from);
          f.get(to).get(dstRow).add().set(to);
        },
      );
    },
  );
  return f;
}

function scatterAddRowsFunc(): Func {
  const f = new Func("scatterAddRows", 6);
  const [x, ids, out, rows, width, segments] = Array.from({ length: 6 }, (_, i) => i);
  const [r, j, id, rowBytes, vectorBytes, src, dst] = Array.from({ length: 7 }, () => f.local("i32"));
  f.get(width).i32(2).shl().set(rowBytes);
  f.get(width).i32(-4).and().i32(2).shl().set(vectorBytes);
  f.forRange(
    r,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      f.get(ids).get(r).i32(2).shl().add().i32Load().set(id);
      f.get(id).get(segments).ltU(); // unsigned: a negative id is out of range too
      f.if_(() => {
        f.get(x).get(r).get(rowBytes).mul().add().set(src);
        f.get(out).get(id).get(rowBytes).mul().add().set(dst);
        emitRowSum(f, dst, dst, src, j, vectorBytes, rowBytes);
      });
    },
  );
  return f;
}

function transposeFunc(): Func {
  const f = new Func("transpose", 6);
  const [src, dst, rows, cols, srcStride, dstStride] = [0, 1, 2, 3, 4, 5];
  const j0 = f.local("i32");
  const i = f.local("i32");
  const j = f.local("i32");
  const jEnd = f.local("i32");
  const rowBytes = f.local("i32"); // stride of src rows
  const colBytes = f.local("i32"); // stride of dst rows
  const from = f.local("i32");
  const to = f.local("i32");
  const [r0, r1, r2, r3, t0, t1, t2, t3] = Array.from({ length: 8 }, () => f.local("v128"));
  f.get(srcStride).i32(2).shl().set(rowBytes);
  f.get(dstStride).i32(2).shl().set(colBytes);
  // column tiles of 32: the 32 destination rows they fill are written sequentially
  f.forRange(
    j0,
    () => f.i32(0),
    () => f.get(cols),
    32,
    () => {
      f.get(j0).i32(32).add().tee(jEnd).get(cols).ltU().eqz();
      f.if_(() => f.get(cols).set(jEnd));
      f.forRange(
        i,
        () => f.i32(0),
        () => f.get(rows),
        4,
        () => {
          f.forRange(
            j,
            () => f.get(j0),
            () => f.get(jEnd),
            4,
            () => {
              // 4 × 4 block at (i, j): 4 source rows in, 4 destination rows out
              f.get(src).get(i).get(rowBytes).mul().add().get(j).i32(2).shl().add().set(from);
              f.get(from).load().set(r0);
              f.get(from).get(rowBytes).add().tee(from).load().set(r1);
              f.get(from).get(rowBytes).add().tee(from).load().set(r2);
              f.get(from).get(rowBytes).add().load().set(r3);
              f.get(r0).get(r1).shuffle32([0, 4, 1, 5]).set(t0);
              f.get(r0).get(r1).shuffle32([2, 6, 3, 7]).set(t1);
              f.get(r2).get(r3).shuffle32([0, 4, 1, 5]).set(t2);
              f.get(r2).get(r3).shuffle32([2, 6, 3, 7]).set(t3);
              f.get(dst).get(j).get(colBytes).mul().add().get(i).i32(2).shl().add().set(to);
              f.get(to).get(t0).get(t2).shuffle32([0, 1, 4, 5]).store();
              f.get(to).get(colBytes).add().tee(to).get(t0).get(t2).shuffle32([2, 3, 6, 7]).store();
              f.get(to).get(colBytes).add().tee(to).get(t1).get(t3).shuffle32([0, 1, 4, 5]).store();
              f.get(to).get(colBytes).add().get(t1).get(t3).shuffle32([2, 3, 6, 7]).store();
            },
          );
        },
      );
    },
  );
  return f;
}

export const simdModule = new KernelModule<SimdKernels>("SIMD kernels", () => [
  tanhFunc(),
  geluFwdFunc(),
  geluBwdFunc(),
  layerNormFwdFunc(),
  layerNormBwdFunc(),
  softmaxBlockFunc(),
  softmaxBwdFunc(),
  adamWFunc(),
  dotProductsFunc(),
  weightedRowsFunc(),
  columnSumsFunc(),
  scatterAddRowsFunc(),
  transposeFunc(),
  copyBlocksFunc(),
  addRowsFunc(),
]);

/**
 * The SIMD kernels over this backend's heap, or null where WebAssembly SIMD or the heap's Memory object is
 * unavailable (the callers then use their JavaScript loops). GPT_WASM_SIMD_KERNELS=0 turns them off.
 */
export function simdKernels(backend: WasmBackend): SimdKernels | null {
  return simdModule.instance(heapMemory(backend));
}
