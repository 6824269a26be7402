/**
 * The matmul's micro-kernel (gemm.ts): tiles of 4 × 8 (or 1 × 8) entries of C in vector registers, over packed
 * strips of B, with K in chunks that stay in the L2 cache.
 */
import { STRIP } from "./gemm-pack.js";
import { Func } from "./wasm-asm.js";

/** K per chunk: 256 rows of a packed strip are 8 KiB; a 384-column chunk of packed B, 384 KiB (L2 is 512). */
const K_CHUNK = 256;

/**
 * The micro-kernel's loops for `R` rows at a time: K in chunks of K_CHUNK (the first overwrites C, the others
 * add to it), then tiles of R rows, then strips. `panels` (R = 4): A packed in panels of 4 rows (`packA`),
 * read through one pointer with constant offsets; otherwise (R = 1) A through its strides.
 */
export function rowsFunc(name: string, R: number, fused: boolean, panels: boolean): Func {
  const f = new Func(name, 13);
  const [a, aRowBytes, aKBytes, b, stripBytes, bKBytes, c, cRowBytes, rows, N, K, scratch, bias] = Array.from(
    { length: 13 },
    (_, i) => i,
  );
  const [k0, chunkBytes, i, j, p, pEnd, cRow, col, r, addBias] = Array.from({ length: 10 }, () => f.local("i32"));
  const aRow = Array.from({ length: panels ? 1 : R }, () => f.local("i32"));
  const acc = Array.from({ length: 2 * R }, () => f.local("v128"));
  const [b0, b1, av] = [f.local("v128"), f.local("v128"), f.local("v128")];
  f.forRange(
    k0,
    () => f.i32(0),
    () => f.get(K),
    K_CHUNK,
    () => {
      // the bias row (if any) is added with the last chunk, after the sums: (Σ_k a·b) + bias, as Add would
      f.get(bias)
        .i32(0)
        .ne()
        .get(K)
        .get(k0)
        .sub()
        .i32(K_CHUNK + 1)
        .ltU()
        .and()
        .set(addBias);
      // this chunk's rows of a strip: min(K_CHUNK, K − k0) rows, bKBytes apart
      f.get(K)
        .get(k0)
        .sub()
        .tee(chunkBytes)
        .i32(K_CHUNK)
        .get(chunkBytes)
        .i32(K_CHUNK)
        .ltU()
        .select()
        .get(bKBytes)
        .mul()
        .set(chunkBytes);
      f.forRange(
        i,
        () => f.i32(0),
        () => f.get(rows),
        R,
        () => {
          f.forRange(
            j,
            () => f.i32(0),
            () => f.get(N),
            STRIP,
            () => {
              for (const x of acc) f.f32(0).splat().set(x);
              if (panels) {
                // panel i / 4 (aRowBytes: bytes per panel), from k0: 4 floats per k
                f.get(a).get(i).i32(2).shrU().get(aRowBytes).mul().add().get(k0).i32(4).shl().add().set(aRow[0]);
              } else {
                for (let q = 0; q < R; q++) {
                  f.get(a).get(i).i32(q).add().get(aRowBytes).mul().add().get(k0).get(aKBytes).mul().add().set(aRow[q]);
                }
              }
              // strip j / 8 of B, from row k0
              f.get(b)
                .get(j)
                .i32(3)
                .shrU()
                .get(stripBytes)
                .mul()
                .add()
                .get(k0)
                .get(bKBytes)
                .mul()
                .add()
                .tee(p)
                .get(chunkBytes)
                .add()
                .set(pEnd);
              f.block(() =>
                f.loop(() => {
                  f.get(p).get(pEnd).ltU().eqz().brIf(1);
                  f.get(p).load().set(b0);
                  f.get(p).load(16).set(b1);
                  for (let q = 0; q < R; q++) {
                    if (panels)
                      f.get(aRow[0])
                        .loadSplat(4 * q)
                        .set(av);
                    else f.get(aRow[q]).loadSplat().set(av);
                    f.multiplyAdd(
                      fused,
                      () => f.get(av),
                      () => f.get(b0),
                      acc[2 * q],
                    );
                    f.multiplyAdd(
                      fused,
                      () => f.get(av),
                      () => f.get(b1),
                      acc[2 * q + 1],
                    );
                    if (!panels) f.get(aRow[q]).get(aKBytes).add().set(aRow[q]);
                  }
                  if (panels) f.get(aRow[0]).i32(16).add().set(aRow[0]);
                  f.get(p).get(bKBytes).add().set(p);
                  f.br(0);
                }),
              );
              f.get(c).get(i).get(cRowBytes).mul().add().get(j).i32(2).shl().add().set(cRow);
              // j + 8 ≤ N: a full strip; else the last strip, N − j < 8 columns
              f.get(j).i32(STRIP).add().get(N).ltU().get(j).i32(STRIP).add().get(N).sub().eqz().or();
              f.ifElse(
                () => {
                  // add the earlier chunks' sums, store
                  for (let q = 0; q < R; q++) {
                    for (let half = 0; half < 2; half++) {
                      f.get(k0).if_(() =>
                        f
                          .get(acc[2 * q + half])
                          .get(cRow)
                          .load(16 * half)
                          .vadd()
                          .set(acc[2 * q + half]),
                      );
                      f.get(addBias).if_(() =>
                        f
                          .get(acc[2 * q + half])
                          .get(bias)
                          .get(j)
                          .i32(2)
                          .shl()
                          .add()
                          .load(16 * half)
                          .vadd()
                          .set(acc[2 * q + half]),
                      );
                      f.get(cRow)
                        .get(acc[2 * q + half])
                        .store(16 * half);
                    }
                    f.get(cRow).get(cRowBytes).add().set(cRow);
                  }
                },
                () => {
                  // through scratch, column by column
                  for (let q = 0; q < R; q++) {
                    f.get(scratch)
                      .get(acc[2 * q])
                      .store(32 * q);
                    f.get(scratch)
                      .get(acc[2 * q + 1])
                      .store(32 * q + 16);
                  }
                  f.forRange(
                    r,
                    () => f.i32(0),
                    () => f.i32(R),
                    1,
                    () => {
                      f.forRange(
                        col,
                        () => f.i32(0),
                        () => f.get(N).get(j).sub(),
                        1,
                        () => {
                          f.get(cRow).get(col).i32(2).shl().add();
                          f.get(scratch).get(r).i32(5).shl().add().get(col).i32(2).shl().add().f32Load();
                          f.get(cRow).get(col).i32(2).shl().add().f32Load().f32(0).get(k0).select().f32Add();
                          f.get(bias).get(j).get(col).add().i32(2).shl().add().f32Load().f32(0).get(addBias).select();
                          f.f32Add().f32Store();
                        },
                      );
                      f.get(cRow).get(cRowBytes).add().set(cRow);
                    },
                  );
                },
              );
            },
          );
        },
      );
    },
  );
  return f;
}

/**
 * Dot products for one row of A against a transposed B, read as it lies: c[n] = Σ_k a[k] · b[n, k] for `rows`
 * rows n of B, each K contiguous floats, bRowBytes apart. This is generation's tied output head (one hidden
 * state times GPT-2's 50,257 × 768 token embeddings): a matrix-vector product whose cost is reading the matrix
 * once. The matmul above would first pack the whole matrix (copy 154 MB per token); here each row of B streams
 * through two vector accumulators (8 floats per step), then the K mod 8 last floats one at a time.
 */
export function dotRowsFunc(fused: boolean): Func {
  const f = new Func("dotRows", 6);
  const [a, b, bRowBytes, c, rows, K] = Array.from({ length: 6 }, (_, i) => i);
  const [n, p, q, vectorEnd, end] = Array.from({ length: 5 }, () => f.local("i32"));
  const [acc0, acc1] = [f.local("v128"), f.local("v128")];
  const sum = f.local("f32");
  f.forRange(
    n,
    () => f.i32(0),
    () => f.get(rows),
    1,
    () => {
      f.f32(0).splat().set(acc0);
      f.f32(0).splat().set(acc1);
      f.get(b).get(n).get(bRowBytes).mul().add().set(p); // row n of B
      f.get(a).set(q);
      f.get(a).get(K).i32(-8).and().i32(2).shl().add().set(vectorEnd); // a + 4 · (K rounded down to 8)
      f.get(a).get(K).i32(2).shl().add().set(end);
      f.block(() =>
        f.loop(() => {
          f.get(q).get(vectorEnd).ltU().eqz().brIf(1);
          for (const [offset, accumulator] of [
            [0, acc0],
            [16, acc1],
          ])
            f.multiplyAdd(
              fused,
              () => f.get(q).load(offset),
              () => f.get(p).load(offset),
              accumulator,
            );
          f.get(q).i32(32).add().set(q);
          f.get(p).i32(32).add().set(p);
          f.br(0);
        }),
      );
      f.get(acc0).get(acc1).vadd().set(acc0);
      f.horizontalSum(acc0).set(sum);
      f.block(() =>
        f.loop(() => {
          f.get(q).get(end).ltU().eqz().brIf(1);
          f.get(sum).get(q).f32Load().get(p).f32Load().f32Mul().f32Add().set(sum);
          f.get(q).i32(4).add().set(q);
          f.get(p).i32(4).add().set(p);
          f.br(0);
        }),
      );
      f.get(c).get(n).i32(2).shl().add().get(sum).f32Store();
    },
  );
  return f;
}

/**
 * packA for a range of A's rows, then rows4 over the panels just packed (still in cache): one call per piece of
 * a matmul whose B was packed beforehand (gemm.ts), so that the threads need no wait between packing A and
 * multiplying.
 */
export function packRowsFunc(packA: Func, rows4: Func): Func {
  const f = new Func("packRows4", 14);
  const [a, rowStride, colStride, rows, K, packed, b, stripBytes, bKBytes, c, cRowBytes, N, scratch, bias] = Array.from(
    { length: 14 },
    (_, i) => i,
  );
  for (const arg of [a, rowStride, colStride, rows, K, packed]) f.get(arg);
  f.call(packA);
  f.get(packed).get(K).i32(4).shl().i32(16); // panels, panelBytes = 16 K, (unused)
  for (const arg of [b, stripBytes, bKBytes, c, cRowBytes, rows, N, K, scratch, bias]) f.get(arg);
  f.call(rows4);
  return f;
}
