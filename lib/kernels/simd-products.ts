/**
 * The SIMD routines of simd.ts for attention's products, over the keys each query may see: dot products of
 * rows (Q·Kᵀ, dO·Vᵀ) and weighted sums of rows (P·V, Pᵀ·dO, dS·K, dSᵀ·Q).
 */
import { Func } from "./wasm-asm.js";

/** Pushes min(limit, i + above + 1) (unsigned), the end of row i's range. */
function rangeEnd(f: Func, i: number, above: number, limit: number): void {
  const end = f.local("i32");
  f.get(i).get(above).add().i32(1).add().set(end);
  f.get(end).get(limit).get(end).get(limit).ltU().select();
}

export function dotProductsFunc(fused: boolean): Func {
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
                f.multiplyAdd(
                  fused,
                  () => f.get(av),
                  () => f.get(row).get(t).add().load(),
                  acc[r],
                ),
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
              f.multiplyAdd(
                fused,
                () => f.get(aRow).get(t).add().load(),
                () => f.get(b0).get(t).add().load(),
                acc[0],
              );
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

export function weightedRowsFunc(fused: boolean): Func {
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
          f.multiplyAdd(
            fused,
            () => f.get(weight),
            () => f.get(xPtr).load(16 * v),
            acc[v],
          );
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
