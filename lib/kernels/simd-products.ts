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

/**
 * c[i, j] = scale · Σ_t a[i, t] · b[j, t] for the keys j < min(n, i + above + 1) each row i may see. Two rows
 * of a against four rows of b at a time: 8 independent sums, each load of a serving four keys and each load of
 * b two rows. Keys in groups of four are summed in vector lanes, then across lanes by shuffles; the last
 * (visible keys mod 4) one at a time. Which keys of a row take which path depends only on that row, so the
 * result does not depend on how rows are paired or shared out among threads.
 */
export function dotProductsFunc(fused: boolean): Func {
  const f = new Func("dotProducts", 11, [...Array(10).fill("i32"), "f32"] as Array<"i32" | "f32">);
  const [a, b, c, m, n, k, aStride, bStride, cStride, above, scale] = Array.from({ length: 11 }, (_, i) => i);
  const [i, row, j, t, pairs, jEnd, jEnd4, jPair4, kBytes, bStep, aRow, aRow2, cRow, b0, b1, b2, b3] = Array.from(
    { length: 17 },
    () => f.local("i32"),
  );
  const acc = Array.from({ length: 8 }, () => f.local("v128"));
  const [av, av2, bv, u01, u23, scaleV] = Array.from({ length: 6 }, () => f.local("v128"));
  f.get(k).i32(2).shl().set(kBytes);
  f.get(bStride).i32(2).shl().set(bStep);
  f.get(scale).splat().set(scaleV);
  f.get(m).i32(-2).and().set(pairs);
  /** Byte offset of row r of a (or c) from the local holding r. */
  const rowAt = (base: number, r: () => void, stride: number) => {
    f.get(base);
    r();
    f.get(stride).mul().i32(2).shl().add();
  };
  /** Stores scale · [Σ acc[s], Σ acc[s + 1], Σ acc[s + 2], Σ acc[s + 3]] (each across its lanes) at cRow + 4 j. */
  const storeFour = (s: number, out: number) => {
    f.get(acc[s])
      .get(acc[s + 1])
      .shuffle32([0, 4, 1, 5])
      .get(acc[s])
      .get(acc[s + 1])
      .shuffle32([2, 6, 3, 7]);
    f.vadd().set(u01);
    f.get(acc[s + 2])
      .get(acc[s + 3])
      .shuffle32([0, 4, 1, 5])
      .get(acc[s + 2])
      .get(acc[s + 3])
      .shuffle32([2, 6, 3, 7]);
    f.vadd().set(u23);
    f.get(out).get(j).i32(2).shl().add();
    f.get(u01).get(u23).shuffle32([0, 1, 4, 5]).get(u01).get(u23).shuffle32([2, 3, 6, 7]).vadd().get(scaleV).vmul();
    f.store();
  };
  /** Keys j … j + 3 against one row (aRow) or two (aRow, aRow2): four (or eight) sums over t. */
  const group = (two: boolean) => {
    f.get(b).get(j).get(bStride).mul().i32(2).shl().add().set(b0);
    f.get(b0).get(bStep).add().set(b1);
    f.get(b1).get(bStep).add().set(b2);
    f.get(b2).get(bStep).add().set(b3);
    for (const x of acc.slice(0, two ? 8 : 4)) f.f32(0).splat().set(x);
    f.forRange(
      t,
      () => f.i32(0),
      () => f.get(kBytes),
      16,
      () => {
        f.get(aRow).get(t).add().load().set(av);
        if (two) f.get(aRow2).get(t).add().load().set(av2);
        [b0, b1, b2, b3].forEach((key, r) => {
          f.get(key).get(t).add().load().set(bv);
          f.multiplyAdd(
            fused,
            () => f.get(av),
            () => f.get(bv),
            acc[r],
          );
          if (two)
            f.multiplyAdd(
              fused,
              () => f.get(av2),
              () => f.get(bv),
              acc[4 + r],
            );
        });
      },
    );
  };
  /** Row `row` from key `from` on: groups of four up to its jEnd4, then one key at a time up to its jEnd. */
  const restOfRow = (from: () => void) => {
    rangeEnd(f, row, above, n);
    f.tee(jEnd).i32(-4).and().set(jEnd4);
    rowAt(a, () => f.get(row), aStride);
    f.set(aRow);
    rowAt(c, () => f.get(row), cStride);
    f.set(cRow);
    f.forRange(
      j,
      from,
      () => f.get(jEnd4),
      4,
      () => {
        group(false);
        storeFour(0, cRow);
      },
    );
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
  };
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(pairs),
    2,
    () => {
      // rows i and i + 1 together over the groups of four keys both see (row i sees no more keys than row i + 1)
      rangeEnd(f, i, above, n);
      f.i32(-4).and().set(jPair4);
      rowAt(a, () => f.get(i), aStride);
      f.tee(aRow).get(aStride).i32(2).shl().add().set(aRow2);
      rowAt(c, () => f.get(i), cStride);
      f.set(cRow);
      f.forRange(
        j,
        () => f.i32(0),
        () => f.get(jPair4),
        4,
        () => {
          group(true);
          storeFour(0, cRow);
          f.get(cRow).get(cStride).i32(2).shl().add().set(b0);
          storeFour(4, b0);
        },
      );
      for (const r of [0, 1]) {
        f.get(i).i32(r).add().set(row);
        restOfRow(() => f.get(jPair4));
      }
    },
  );
  f.get(pairs).get(m).ltU();
  f.if_(() => {
    f.get(pairs).set(row);
    restOfRow(() => f.i32(0));
  });
  return f;
}

/**
 * c[i, :] = Σ_t w[i, t] · x[t, :] over row i's visible range t ∈ [max(0, i − below), min(k, i + above + 1)).
 * Two rows at a time: for each t both rows' weights multiply the same loaded columns of x, so 8 independent
 * sums (2 rows × 16 columns) keep the multiply-add unit busy and every load of x serves two rows. The two
 * rows' ranges differ by at most a key at each end: row i's first keys alone, then both rows together, then
 * row i + 1's last keys alone, so that each sum still runs over t in increasing order (the same result as one
 * row at a time, bit for bit, whichever rows a thread gets).
 */
export function weightedRowsFunc(fused: boolean): Func {
  const f = new Func("weightedRows", 12);
  const [w, x, c, m, n, k, wRowStride, wColStride, xStride, cStride, below, above] = Array.from(
    { length: 12 },
    (_, i) => i,
  );
  const [i, next, j, t, tEnd, pairs, nBytes, nBytes16, wPtr, xPtr, wStep, xStep, wRowBytes, cRow, cRow2] = Array.from(
    { length: 15 },
    () => f.local("i32"),
  );
  // the two rows' ranges [start1, end1) and [start2, end2), and where they overlap
  const [start1, end1, start2, end2] = Array.from({ length: 4 }, () => f.local("i32"));
  const acc = Array.from({ length: 8 }, () => f.local("v128"));
  const [weight, weight2, column] = [f.local("v128"), f.local("v128"), f.local("v128")];
  f.get(n).i32(2).shl().tee(nBytes).i32(-64).and().set(nBytes16);
  f.get(wColStride).i32(2).shl().set(wStep);
  f.get(wRowStride).i32(2).shl().set(wRowBytes);
  f.get(xStride).i32(2).shl().set(xStep);
  f.get(m).i32(-2).and().set(pairs);
  // unsigned min and max of two pushed values (select keeps the first where the comparison holds)
  const min = (a: () => void, b: () => void) => {
    a();
    b();
    a();
    b();
    f.ltU().select();
  };
  const max = (a: () => void, b: () => void) => {
    a();
    b();
    b();
    a();
    f.ltU().select();
  };
  /** Row `row`'s range: start = row > below ? row − below : 0, end = min(k, row + above + 1). */
  const range = (row: number, start: number, end: number) => {
    f.get(row).get(below).sub().i32(0).get(below).get(row).ltU().select().set(start);
    rangeEnd(f, row, above, k);
    f.set(end);
  };
  /** Adds w[i + r, t] · x[t, j …] for t in [from, to) to row r's sums, for r in `rows` ([0], [1] or [0, 1]). */
  const terms = (from: () => void, to: () => void, rows: number[], vectors: number) => {
    to();
    f.set(tEnd);
    from();
    f.set(t);
    f.get(w)
      .get(i)
      .i32(rows[0])
      .add()
      .get(wRowStride)
      .mul()
      .get(t)
      .get(wColStride)
      .mul()
      .add()
      .i32(2)
      .shl()
      .add()
      .set(wPtr);
    f.get(x).get(t).get(xStride).mul().i32(2).shl().add().get(j).add().set(xPtr);
    f.block(() =>
      f.loop(() => {
        f.get(t).get(tEnd).ltU().eqz().brIf(1);
        f.get(wPtr).f32Load().splat().set(weight);
        if (rows.length === 2) f.get(wPtr).get(wRowBytes).add().f32Load().splat().set(weight2);
        for (let v = 0; v < vectors; v++) {
          f.get(xPtr)
            .load(16 * v)
            .set(column);
          rows.forEach((row, r) =>
            f.multiplyAdd(
              fused,
              () => f.get(r === 0 ? weight : weight2),
              () => f.get(column),
              acc[4 * row + v],
            ),
          );
        }
        f.get(wPtr).get(wStep).add().set(wPtr);
        f.get(xPtr).get(xStep).add().set(xPtr);
        f.get(t).i32(1).add().set(t);
        f.br(0);
      }),
    );
  };
  /** Output rows i and i + 1 (two) or row i alone, a column chunk of 4 · vectors floats at byte j. */
  const chunk = (two: boolean, vectors: number) => {
    for (let v = 0; v < vectors; v++) {
      f.f32(0).splat().set(acc[v]);
      if (two)
        f.f32(0)
          .splat()
          .set(acc[4 + v]);
    }
    if (two) {
      terms(
        () => f.get(start1),
        () =>
          min(
            () => f.get(start2),
            () => f.get(end1),
          ),
        [0],
        vectors,
      );
      terms(
        () => f.get(start2),
        () => f.get(end1),
        [0, 1],
        vectors,
      );
      terms(
        () =>
          max(
            () => f.get(start2),
            () => f.get(end1),
          ),
        () => f.get(end2),
        [1],
        vectors,
      );
    } else {
      terms(
        () => f.get(start1),
        () => f.get(end1),
        [0],
        vectors,
      );
    }
    for (let r = 0; r < (two ? 2 : 1); r++) {
      for (let v = 0; v < vectors; v++)
        f.get(r === 0 ? cRow : cRow2)
          .get(j)
          .add()
          .get(acc[4 * r + v])
          .store(16 * v);
    }
  };
  const rowBlock = (two: boolean) => {
    range(i, start1, end1);
    if (two) {
      f.get(i).i32(1).add().set(next);
      range(next, start2, end2);
    }
    f.get(c).get(i).get(cStride).mul().i32(2).shl().add().tee(cRow).get(cStride).i32(2).shl().add().set(cRow2);
    f.forRange(
      j,
      () => f.i32(0),
      () => f.get(nBytes16),
      64,
      () => chunk(two, 4),
    ); // 16 columns: four sums per row
    f.forRange(
      j,
      () => f.get(nBytes16),
      () => f.get(nBytes),
      16,
      () => chunk(two, 1),
    );
  };
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(pairs),
    2,
    () => rowBlock(true),
  );
  f.get(pairs).get(m).ltU();
  f.if_(() => {
    f.get(pairs).set(i);
    rowBlock(false);
  });
  return f;
}
