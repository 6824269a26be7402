/** The SIMD routines of simd.ts for LayerNorm: each row's statistics and output, and the backward pass. */
import { Func } from "./wasm-asm.js";

export function layerNormFwdFunc(): Func {
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

/**
 * LayerNorm's gradient for `rows` rows of C floats: dx, and each block of 32 rows' float32 sums of dy·x̂ and
 * dy into its own slot of blockG and blockB (C floats a slot, slots zeroed by the caller), so that threads
 * can take different blocks and the caller adds the slots up in order (layernorm.ts).
 */
export function layerNormBwdFunc(): Func {
  const f = new Func("layerNormBwd", 10);
  const [dy, x, gamma, meanPtr, rstdPtr, dx, blockG, blockB, rows, C] = Array.from({ length: 10 }, (_, i) => i);
  const [r, j, rowBytes, off, slotG, slotB] = Array.from({ length: 6 }, () => f.local("i32"));
  const [m, s, xhat, d, gc, sumG, sumGX, meanG, meanGX] = Array.from({ length: 9 }, () => f.local("v128"));
  const invC = f.local("f32");
  f.get(C).i32(2).shl().set(rowBytes);
  f.f32(1).get(C).f64FromI32().f32FromF64().f32Div().set(invC);
  f.forRange(
    r,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      // this row's block slots: block r / 32
      f.get(r).i32(5).shrU().get(rowBytes).mul().tee(slotG).get(blockB).add().set(slotB);
      f.get(slotG).get(blockG).add().set(slotG);
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
          f.get(slotG).get(j).add();
          f.get(slotG).get(j).add().load().get(d).get(xhat).vmul().vadd();
          f.store();
          f.get(slotB).get(j).add();
          f.get(slotB).get(j).add().load().get(d).vadd();
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
    },
  );
  return f;
}
