/**
 * The element-wise SIMD routines of simd.ts, 4 floats per instruction: tanh, GELU (forward, and backward from
 * the forward pass's tanh), and the AdamW update.
 */
import { Func } from "./wasm-asm.js";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const CUBIC = 0.044715;
const CLAMP = 7.905311107635498; // the float64 nearest 7.90531110763549805
const A = [
  4.89352455891786e-3, 6.37261928875436e-4, 1.48572235717979e-5, 5.12229709037114e-8, -8.60467152213735e-11,
  2.00018790482477e-13, -2.76076847742355e-16,
];
const B = [4.89352518554385e-3, 2.268434632439e-3, 1.18534705686654e-4, 1.19825839466702e-6];

/** t[g] = tanh(u[g]) for v128 locals u[g], with the saturation fix; the chains of all g interleaved. */
function emitTanh(f: Func, u: number[], t: number[]): void {
  const [u2, p, q] = [0, 1, 2].map(() => f.locals("v128", u.length));
  const each = (body: (g: number) => void) => u.forEach((_, g) => body(g));
  // u2 = u² (no clamp of u: lanes with |u| > CLAMP, where the polynomials may overflow, are replaced below)
  each((g) => f.get(u[g]).get(u[g]).vmul().set(u2[g]));
  // p = u · (A1 + u2·(A3 + u2·(A5 + u2·(A7 + u2·(A9 + u2·(A11 + u2·A13))))))
  each((g) => f.f32(A[6]).splat().set(p[g]));
  for (let k = 5; k >= 0; k--) each((g) => f.get(p[g]).get(u2[g]).vmul().f32(A[k]).splat().vadd().set(p[g]));
  each((g) => f.get(p[g]).get(u[g]).vmul().set(p[g]));
  // q = B0 + u2·(B2 + u2·(B4 + u2·B6))
  each((g) => f.f32(B[3]).splat().set(q[g]));
  for (let k = 2; k >= 0; k--) each((g) => f.get(q[g]).get(u2[g]).vmul().f32(B[k]).splat().vadd().set(q[g]));
  // t = p / q, or ±1 (1 with u's sign bit) where |u| > CLAMP
  each((g) => {
    f.get(u[g]).f32(-0).splat().vand().f32(1).splat().vor();
    f.get(p[g]).get(q[g]).vdiv();
    f.get(u[g]).vabs().f32(CLAMP).splat().vgt();
    f.vbitselect().set(t[g]);
  });
}

export function tanhFunc(): Func {
  const f = new Func("tanh", 3);
  const [x, y, n] = [0, 1, 2];
  const [i, end] = [f.local("i32"), f.local("i32")];
  f.get(n).i32(2).shl().set(end);
  f.forVectors(
    i,
    () => f.i32(0),
    end,
    (count) => {
      const [u, t] = Array.from({ length: 2 }, () => f.locals("v128", count));
      u.forEach((ug, g) =>
        f
          .get(x)
          .get(i)
          .add()
          .load(16 * g)
          .set(ug),
      );
      emitTanh(f, u, t);
      t.forEach((tg, g) =>
        f
          .get(y)
          .get(i)
          .add()
          .get(tg)
          .store(16 * g),
      );
    },
  );
  return f;
}

export function geluFwdFunc(): Func {
  const f = new Func("geluFwd", 4);
  const [x, y, tOut, n] = [0, 1, 2, 3];
  const [i, end] = [f.local("i32"), f.local("i32")];
  f.get(n).i32(2).shl().set(end);
  f.forVectors(
    i,
    () => f.i32(0),
    end,
    (count) => {
      const [v, u, t] = Array.from({ length: 3 }, () => f.locals("v128", count));
      v.forEach((vg, g) => {
        f.get(x)
          .get(i)
          .add()
          .load(16 * g)
          .set(vg);
        // u = √(2/π) (v + 0.044715 v³)
        f.get(vg).get(vg).vmul().get(vg).vmul().f32(CUBIC).splat().vmul().get(vg).vadd();
        f.f32(SQRT_2_OVER_PI).splat().vmul().set(u[g]);
      });
      emitTanh(f, u, t);
      t.forEach((tg, g) => {
        f.get(tOut)
          .get(i)
          .add()
          .get(tg)
          .store(16 * g);
        // y = 0.5 v (1 + t)
        f.get(y).get(i).add();
        f.get(tg).f32(1).splat().vadd().get(v[g]).vmul().f32(0.5).splat().vmul();
        f.store(16 * g);
      });
    },
  );
  return f;
}

export function geluBwdFunc(): Func {
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

export function adamWFunc(): Func {
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
