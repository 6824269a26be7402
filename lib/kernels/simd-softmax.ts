/**
 * The SIMD routines of simd.ts for attention's softmax: exp(x) in float32 (Cephes' expf), the softmax of a
 * block of rows over the keys each query may see, and the softmax gradient; and exp on its own (tfjs's Exp).
 */
import { Func } from "./wasm-asm.js";

// exp(x) = 2ⁿ · e^r with n = round(x log₂e), r = x − n ln 2 (ln 2 in two parts, for exactness), e^r by
// Cephes' expf polynomial; x is first kept ≥ −87.3, where e^x still is a normal float32.
const LOG2E = Math.LOG2E;
const LN2_HIGH = 0.693359375;
const LN2_LOW = -2.1219444e-4;
const EXP_POLYNOMIAL = [
  1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
];
const EXP_MIN = -87.33654;

/** e[g] = e^x[g] for v128 locals x[g] (the chains of all g interleaved). */
function emitExp(f: Func, x: number[], e: number[]): void {
  const [n, r] = [0, 1].map(() => f.locals("v128", x.length));
  const each = (body: (g: number) => void) => x.forEach((_, g) => body(g));
  each((g) => f.get(x[g]).f32(EXP_MIN).splat().vpmax().set(r[g])); // pmax(x, min) keeps a NaN x
  each((g) => f.get(r[g]).f32(LOG2E).splat().vmul().vnearest().set(n[g]));
  each((g) => {
    f.get(r[g]).get(n[g]).f32(LN2_HIGH).splat().vmul().vsub();
    f.get(n[g]).f32(LN2_LOW).splat().vmul().vsub().set(r[g]);
  });
  each((g) => f.f32(EXP_POLYNOMIAL[0]).splat().set(e[g]));
  for (const c of EXP_POLYNOMIAL.slice(1)) each((g) => f.get(e[g]).get(r[g]).vmul().f32(c).splat().vadd().set(e[g]));
  // × 2ⁿ: the float with exponent bits n + 127
  each((g) => {
    f.get(e[g]).get(r[g]).get(r[g]).vmul().vmul().get(r[g]).vadd().f32(1).splat().vadd();
    f.get(n[g]).vtruncToInt().i32(127).vintSplat().vintAdd().i32(23).vintShl();
    f.vmul().set(e[g]);
  });
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

/** 127.5 · ln 2: above it emitExp's n = round(x · log₂e) would reach 128, past float32's exponents. */
const EXP_HALF_STEP = 127.5 * Math.LN2;

/**
 * y = e^x for n (a multiple of 4) floats, for any x: emitExp's range widened at both ends. Above 127.5 · ln 2
 * it computes e^(x − ln 2) · 2 (so e^x overflows to +∞ only past float32's largest float, at 88.72); below
 * −87.34, where e^x would be a denormal float, it gives 0 (an error under 1.2e−38). NaN stays NaN.
 */
export function expFunc(): Func {
  const f = new Func("exp", 3);
  const [x, y, n] = [0, 1, 2];
  const [i, end] = [f.local("i32"), f.local("i32")];
  f.get(n).i32(2).shl().set(end);
  f.forVectors(
    i,
    () => f.i32(0),
    end,
    (count) => {
      const [u, big, e] = Array.from({ length: 3 }, () => f.locals("v128", count));
      u.forEach((ug, g) => {
        f.get(x)
          .get(i)
          .add()
          .load(16 * g)
          .f32(89)
          .splat()
          .vpmin()
          .set(ug); // e^89 is +∞ in float32 already
        f.get(ug).f32(EXP_HALF_STEP).splat().vgt().set(big[g]);
        f.get(ug).f32(Math.LN2).splat().get(big[g]).vand().vsub().set(ug);
      });
      emitExp(f, u, e);
      e.forEach((eg, g) => {
        f.get(eg).get(eg).get(big[g]).vand().vadd().set(eg); // × 2 where x was lowered by ln 2
        f.get(y).get(i).add();
        f.f32(0)
          .splat()
          .get(eg)
          .f32(EXP_MIN)
          .splat()
          .get(x)
          .get(i)
          .add()
          .load(16 * g)
          .vgt()
          .vbitselect(); // 0 below
        f.store(16 * g);
      });
    },
  );
  return f;
}

/** max over a row's bytes [0, bytes) at `row` into f32 local max: 4 floats a step up to vectorBytes, then 1. */
function emitRowMax(
  f: Func,
  row: number,
  vectorBytes: number,
  bytes: number,
  { j, maxV, max }: Record<"j" | "maxV" | "max", number>,
): void {
  f.f32(-Infinity).splat().set(maxV);
  f.forRange(
    j,
    () => f.i32(0),
    () => f.get(vectorBytes),
    16,
    () => f.get(maxV).get(row).get(j).add().load().vpmax().set(maxV),
  );
  f.get(maxV).lane(0).get(maxV).lane(1).f32Max().get(maxV).lane(2).get(maxV).lane(3).f32Max().f32Max().set(max);
  f.forRange(
    j,
    () => f.get(vectorBytes),
    () => f.get(bytes),
    4,
    () => f.get(max).get(row).get(j).add().f32Load().f32Max().set(max),
  );
}

/**
 * sum = Σ exp(x − max) over a row's bytes [0, bytes) at `row`; with `out`, each exp(x − max) is also written
 * there. The vector sums are added in the order of the row (Func.forVectors' exps of a pass, then added one by
 * one).
 * v128 local sumV and f32 locals xs, ns, rs, es are scratch.
 */
function emitExpSum(
  f: Func,
  row: number,
  out: number | undefined,
  vectorBytes: number,
  bytes: number,
  l: Record<"j" | "max" | "sum" | "sumV" | "xs" | "ns" | "rs" | "es", number>,
): void {
  f.f32(0).splat().set(l.sumV);
  f.forVectors(
    l.j,
    () => f.i32(0),
    vectorBytes,
    (count) => {
      const [x, e] = Array.from({ length: 2 }, () => f.locals("v128", count));
      x.forEach((xg, g) =>
        f
          .get(row)
          .get(l.j)
          .add()
          .load(16 * g)
          .get(l.max)
          .splat()
          .vsub()
          .set(xg),
      );
      emitExp(f, x, e);
      e.forEach((eg, g) => {
        f.get(l.sumV).get(eg).vadd().set(l.sumV);
        if (out !== undefined)
          f.get(out)
            .get(l.j)
            .add()
            .get(eg)
            .store(16 * g);
      });
    },
  );
  f.horizontalSum(l.sumV).set(l.sum);
  f.forRange(
    l.j,
    () => f.get(vectorBytes),
    () => f.get(bytes),
    4,
    () => {
      f.get(row).get(l.j).add().f32Load().get(l.max).f32Sub().set(l.xs);
      emitExpScalar(f, l.xs, l.ns, l.rs);
      f.tee(l.es).get(l.sum).f32Add().set(l.sum);
      if (out !== undefined) f.get(out).get(l.j).add().get(l.es).f32Store();
    },
  );
}

/**
 * For the cross-entropy (cross-entropy.ts): each of `rows` rows of n floats at x, its max into maxOut and
 * Σ exp(x − max) into sumOut (float per row); log-sum-exp = max + ln(sum), taken in JavaScript.
 */
export function rowMaxSumExpFunc(): Func {
  const f = new Func("rowMaxSumExp", 5);
  const [x, maxOut, sumOut, rows, n] = [0, 1, 2, 3, 4];
  const [i, j, row, bytes, vectorBytes] = Array.from({ length: 5 }, () => f.local("i32"));
  const [maxV, sumV] = Array.from({ length: 2 }, () => f.local("v128"));
  const [xs, ns, rs, es, max, sum] = Array.from({ length: 6 }, () => f.local("f32"));
  f.get(n).i32(2).shl().tee(bytes).i32(-16).and().set(vectorBytes);
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      f.get(x).get(i).get(bytes).mul().add().set(row);
      emitRowMax(f, row, vectorBytes, bytes, { j, maxV, max });
      emitExpSum(f, row, undefined, vectorBytes, bytes, { j, max, sum, sumV, xs, ns, rs, es });
      f.get(maxOut).get(i).i32(2).shl().add().get(max).f32Store();
      f.get(sumOut).get(i).i32(2).shl().add().get(sum).f32Store();
    },
  );
  return f;
}

/** out = exp(x − lse[row]) · scale[row] for `rows` rows of n floats: softmax(x) times a factor per row. */
export function scaledSoftmaxRowsFunc(): Func {
  const f = new Func("scaledSoftmaxRows", 6);
  const [x, lse, scale, out, rows, n] = [0, 1, 2, 3, 4, 5];
  const [i, j, bytes, vectorBytes, row, outRow] = Array.from({ length: 6 }, () => f.local("i32"));
  const [lseV, scaleV] = Array.from({ length: 2 }, () => f.local("v128"));
  const [xs, ns, rs, lseS, scaleS] = Array.from({ length: 5 }, () => f.local("f32"));
  f.get(n).i32(2).shl().tee(bytes).i32(-16).and().set(vectorBytes);
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      f.get(x).get(i).get(bytes).mul().add().set(row);
      f.get(out).get(i).get(bytes).mul().add().set(outRow);
      f.get(lse).get(i).i32(2).shl().add().f32Load().tee(lseS).splat().set(lseV);
      f.get(scale).get(i).i32(2).shl().add().f32Load().tee(scaleS).splat().set(scaleV);
      f.forVectors(
        j,
        () => f.i32(0),
        vectorBytes,
        (count) => {
          const [x, e] = Array.from({ length: 2 }, () => f.locals("v128", count));
          x.forEach((xg, g) =>
            f
              .get(row)
              .get(j)
              .add()
              .load(16 * g)
              .get(lseV)
              .vsub()
              .set(xg),
          );
          emitExp(f, x, e);
          e.forEach((eg, g) =>
            f
              .get(outRow)
              .get(j)
              .add()
              .get(eg)
              .get(scaleV)
              .vmul()
              .store(16 * g),
          );
        },
      );
      f.forRange(
        j,
        () => f.get(vectorBytes),
        () => f.get(bytes),
        4,
        () => {
          f.get(row).get(j).add().f32Load().get(lseS).f32Sub().set(xs);
          f.get(outRow).get(j).add();
          emitExpScalar(f, xs, ns, rs);
          f.get(scaleS).f32Mul().f32Store();
        },
      );
    },
  );
  return f;
}

export function softmaxBlockFunc(): Func {
  const f = new Func("softmaxBlock", 7);
  const [s, p, rows, keys, above, rowFloats, k0] = Array.from({ length: 7 }, (_, i) => i);
  const [i, j, visibleBytes, vectorBytes, rowBytes, sRow, pRow, pLine, end] = Array.from({ length: 9 }, () =>
    f.local("i32"),
  );
  const [maxV, sumV] = Array.from({ length: 2 }, () => f.local("v128"));
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
      emitRowMax(f, sRow, vectorBytes, visibleBytes, { j, maxV, max });
      // e = exp(s − max) into p, and their sum
      emitExpSum(f, sRow, pRow, vectorBytes, visibleBytes, { j, max, sum, sumV, xs, ns, rs, es });
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

/**
 * The softmax gradient over the keys each query sees: for row r < rows (rows rowFloats apart in p, g and extra)
 * and keys j < v = min(n, r + above + 1), g ← g + extra (`withExtra`), then g ← p ⊙ (g − Σ_j p ⊙ g) · scale.
 * Entries past v are neither read nor written (p is 0 there; g may hold anything).
 */
export function softmaxBwdFunc(withExtra: boolean): Func {
  const f = new Func(withExtra ? "softmaxBwd" : "softmaxBwdPlain", 8, [...Array<"i32">(7).fill("i32"), "f32"]);
  const [p, g, extra, rows, n, rowFloats, above, scale] = Array.from({ length: 8 }, (_, i) => i);
  const [r, j, rowBytes, bytes, vectorBytes, pRow, gRow, extraRow] = Array.from({ length: 8 }, () => f.local("i32"));
  const [dot, gj, dotV, scaleV] = Array.from({ length: 4 }, () => f.local("v128"));
  const [tailDot, gs] = [f.local("f32"), f.local("f32")];
  f.get(rowFloats).i32(2).shl().set(rowBytes);
  f.get(scale).splat().set(scaleV);
  f.forRange(
    r,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      // the visible keys: min(n, r + above + 1), in bytes; the vector part, a multiple of 16 bytes
      f.get(r).get(above).add().i32(1).add().tee(bytes).get(n).get(bytes).get(n).ltU().select();
      f.i32(2).shl().tee(bytes).i32(-16).and().set(vectorBytes);
      f.get(r).get(rowBytes).mul().tee(gRow).get(p).add().set(pRow);
      f.get(gRow).get(extra).add().set(extraRow);
      f.get(gRow).get(g).add().set(gRow);
      f.f32(0).splat().set(dot);
      f.f32(0).set(tailDot);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(vectorBytes),
        16,
        () => {
          f.get(gRow).get(j).add().load().set(gj);
          if (withExtra) {
            f.get(gj).get(extraRow).get(j).add().load().vadd().set(gj);
            f.get(gRow).get(j).add().get(gj).store();
          }
          f.get(dot).get(pRow).get(j).add().load().get(gj).vmul().vadd().set(dot);
        },
      );
      f.forRange(
        j,
        () => f.get(vectorBytes),
        () => f.get(bytes),
        4,
        () => {
          f.get(gRow).get(j).add().f32Load().set(gs);
          if (withExtra) {
            f.get(gs).get(extraRow).get(j).add().f32Load().f32Add().set(gs);
            f.get(gRow).get(j).add().get(gs).f32Store();
          }
          f.get(tailDot).get(pRow).get(j).add().f32Load().get(gs).f32Mul().f32Add().set(tailDot);
        },
      );
      f.horizontalSum(dot).get(tailDot).f32Add().splat().set(dotV);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(vectorBytes),
        16,
        () => {
          f.get(gRow).get(j).add();
          f.get(gRow).get(j).add().load().get(dotV).vsub().get(pRow).get(j).add().load().vmul().get(scaleV).vmul();
          f.store();
        },
      );
      f.forRange(
        j,
        () => f.get(vectorBytes),
        () => f.get(bytes),
        4,
        () => {
          f.get(gRow).get(j).add();
          f.get(gRow).get(j).add().f32Load().get(dotV).lane(0).f32Sub().get(pRow).get(j).add().f32Load().f32Mul();
          f.get(scale).f32Mul();
          f.f32Store();
        },
      );
    },
  );
  return f;
}
