/**
 * Packing for the matmul (gemm.ts): B into strips of 8 columns and A into panels of 4 rows, so that the
 * micro-kernel (gemm-micro-kernel.ts) reads both sequentially whatever their layout.
 */
import { Func } from "./wasm-asm.js";

/** Columns of a packed strip, rows of the micro-kernel's tile. */
export const STRIP = 8;
export const TILE_ROWS = 4;

/**
 * The 4 × 4 transpose in registers both packings use: v128 locals `rows` hold 4 floats each; the 4 floats of
 * column i (rows[0][i] … rows[3][i]) are stored at out + offset(i) (bytes). `t`: 4 v128 scratch locals.
 */
function emitTranspose4(f: Func, rows: number[], t: number[], out: number, offset: (i: number) => number): void {
  const [r0, r1, r2, r3] = rows;
  f.get(r0).get(r1).shuffle32([0, 4, 1, 5]).set(t[0]); // r0[0] r1[0] r0[1] r1[1]
  f.get(r0).get(r1).shuffle32([2, 6, 3, 7]).set(t[1]); // r0[2] r1[2] r0[3] r1[3]
  f.get(r2).get(r3).shuffle32([0, 4, 1, 5]).set(t[2]);
  f.get(r2).get(r3).shuffle32([2, 6, 3, 7]).set(t[3]);
  f.get(out).get(t[0]).get(t[2]).shuffle32([0, 1, 4, 5]).store(offset(0));
  f.get(out).get(t[0]).get(t[2]).shuffle32([2, 3, 6, 7]).store(offset(1));
  f.get(out).get(t[1]).get(t[3]).shuffle32([0, 1, 4, 5]).store(offset(2));
  f.get(out).get(t[1]).get(t[3]).shuffle32([2, 3, 6, 7]).store(offset(3));
}

/** Rows of a strip summed in float32 before the sum goes into float64 (`sums` below): LayerNorm's dγ does the same. */
export const SUM_BLOCK_ROWS = 32;

/**
 * Column sums of a strip's rows of 8 floats, the way `pack` takes them (a bias gradient, Σ_k B[k, :], with the
 * weight gradient's product): blocks of SUM_BLOCK_ROWS rows in float32, the blocks added in float64, rounded
 * to float32 at the end. `add(v0, v1)` adds row k's two vectors (columns 0-3, 4-7), `endRow(k)` closes a
 * block after its last row, `finish(sums)` closes the last (partial) block and stores the 8 sums.
 */
function stripSums(f: Func) {
  const block = [f.local("v128"), f.local("v128")]; // float32 sums of columns 0-3 and 4-7
  const total = Array.from({ length: 4 }, () => f.local("v128")); // float64 pairs of columns 0-1, 2-3, 4-5, 6-7
  const flush = () =>
    block.forEach((sum, half) => {
      for (const high of [0, 1]) {
        const pair = total[2 * half + high];
        f.get(pair).get(sum);
        if (high) f.get(sum).shuffle32([2, 3, 0, 1]);
        f.promoteLow().f64x2Add().set(pair);
      }
      f.f32(0).splat().set(sum);
    });
  return {
    start: () => {
      for (const v of [...block, ...total]) f.f32(0).splat().set(v);
    },
    add: (rowHalves: Array<() => void>) =>
      block.forEach((sum, half) => {
        f.get(sum);
        rowHalves[half]();
        f.vadd().set(sum);
      }),
    endRow: (k: number) =>
      f
        .get(k)
        .i32(SUM_BLOCK_ROWS - 1)
        .and()
        .i32(SUM_BLOCK_ROWS - 1)
        .sub()
        .eqz()
        .if_(flush),
    finish: (sums: number) => {
      flush(); // the last, partial block (a block of zeros when K is a multiple of SUM_BLOCK_ROWS)
      total.forEach((pair, p) => {
        for (const lane of [0, 1])
          f.get(sums)
            .get(pair)
            .f64x2Lane(lane)
            .f32FromF64()
            .f32Store(4 * (2 * p + lane));
      });
    },
  };
}

export function packFunc(): Func {
  const f = new Func("pack", 7);
  const [b, rowStride, colStride, K, N, packed, sums] = [0, 1, 2, 3, 4, 5, 6];
  const [j, k, col, out, rowBytes, colBytes, from, count, k4, kFirst, strip] = Array.from({ length: 11 }, () =>
    f.local("i32"),
  );
  const rows = Array.from({ length: STRIP }, () => f.local("v128"));
  const [t0, t1, t2, t3] = Array.from({ length: 4 }, () => f.local("v128"));
  const columnSums = stripSums(f);
  f.get(rowStride).i32(2).shl().set(rowBytes);
  f.get(colStride).i32(2).shl().set(colBytes);
  f.get(K).i32(-4).and().set(k4);
  f.get(packed).set(out);
  const wholeStrip = () => f.get(N).get(j).sub().i32(STRIP).ltU().eqz();
  f.forRange(
    j,
    () => f.i32(0),
    () => f.get(N),
    STRIP,
    () => {
      f.i32(0).set(kFirst);
      f.get(out).set(strip);
      columnSums.start();
      // A row-major B of whole strips (a weight matrix; a weight gradient's dy): each k, 8 contiguous floats as
      // two vectors, stored and (if asked) added to the column sums from the same registers.
      f.get(colStride).i32(1).sub().eqz().get(rowStride).i32(1).ne().and();
      wholeStrip().and();
      f.ifElse(
        () => {
          f.get(b).get(j).i32(2).shl().add().set(from);
          const copyRows = (withSums: boolean) =>
            f.forRange(
              k,
              () => f.i32(0),
              () => f.get(K),
              1,
              () => {
                f.get(from).load().set(rows[0]);
                f.get(from).load(16).set(rows[1]);
                f.get(out).get(rows[0]).store();
                f.get(out).get(rows[1]).store(16);
                if (withSums) {
                  columnSums.add([() => f.get(rows[0]), () => f.get(rows[1])]);
                  columnSums.endRow(k);
                }
                f.get(from).get(rowBytes).add().set(from);
                f.get(out)
                  .i32(4 * STRIP)
                  .add()
                  .set(out);
              },
            );
          f.get(sums).ifElse(
            () => copyRows(true),
            () => copyRows(false),
          );
        },
        () => {
          // A transposed B (rowStride 1, a weight matrix read as Wᵀ, e.g. the tied head x · wteᵀ): the strip's 8
          // columns are 8 rows in memory, each contiguous in k. 4 k at a time: one vector from each row, then
          // two 4 × 4 transposes in registers give the strip's rows k … k+3 (8 floats each). The rest (and any
          // other layout), one k at a time.
          f.get(rowStride).i32(1).sub().eqz();
          wholeStrip().and();
          f.if_(() => {
            f.forRange(
              k,
              () => f.i32(0),
              () => f.get(k4),
              4,
              () => {
                f.get(b).get(j).get(colBytes).mul().add().get(k).i32(2).shl().add().set(from);
                for (const row of rows) {
                  f.get(from).load().set(row);
                  f.get(from).get(colBytes).add().set(from);
                }
                // rows k … k+3 of the strip: columns 0-3 from the first four rows, 4-7 from the others
                for (let half = 0; half < 2; half++)
                  emitTranspose4(
                    f,
                    rows.slice(4 * half, 4 * half + 4),
                    [t0, t1, t2, t3],
                    out,
                    (i) => 32 * i + 16 * half,
                  );
                f.get(out)
                  .i32(4 * 4 * STRIP)
                  .add()
                  .set(out);
              },
            );
            f.get(k4).set(kFirst);
          });
          f.forRange(
            k,
            () => f.get(kFirst),
            () => f.get(K),
            1,
            () => {
              f.get(b).get(k).get(rowBytes).mul().add().get(j).get(colBytes).mul().add().set(from);
              // columns j … j+7 (fewer at the end), zeros past N
              f.get(N).get(j).sub().tee(count).i32(STRIP).get(count).i32(STRIP).ltU().select().set(count);
              f.get(out).f32(0).splat().store();
              f.get(out).f32(0).splat().store(16);
              f.forRange(
                col,
                () => f.i32(0),
                () => f.get(count),
                1,
                () => {
                  f.get(out).get(col).i32(2).shl().add().get(from).f32Load().f32Store();
                  f.get(from).get(colBytes).add().set(from);
                },
              );
              f.get(out)
                .i32(4 * STRIP)
                .add()
                .set(out);
            },
          );
          // the column sums, from the strip just packed (still in cache)
          f.get(sums).if_(() => {
            f.get(strip).set(from);
            f.forRange(
              k,
              () => f.i32(0),
              () => f.get(K),
              1,
              () => {
                columnSums.add([() => f.get(from).load(), () => f.get(from).load(16)]);
                columnSums.endRow(k);
                f.get(from)
                  .i32(4 * STRIP)
                  .add()
                  .set(from);
              },
            );
          });
        },
      );
      f.get(sums).if_(() => {
        columnSums.finish(sums);
        f.get(sums)
          .i32(4 * STRIP)
          .add()
          .set(sums);
      });
    },
  );
  return f;
}

/**
 * Packs rows of A (M × K, element (i, k) at a + 4 (i · rowStride + k · colStride), M a multiple of 4) into
 * panels of 4 rows at `packed`: panel t holds, for k = 0 … K−1, the 4 floats A[4t … 4t+3, k].
 */
export function packAFunc(): Func {
  const f = new Func("packA", 6);
  const [a, rowStride, colStride, M, K, packed] = [0, 1, 2, 3, 4, 5];
  const [t, k, r, out, from, rowBytes, colBytes, k4] = Array.from({ length: 8 }, () => f.local("i32"));
  const [r0, r1, r2, r3, t0, t1, t2, t3] = Array.from({ length: 8 }, () => f.local("v128"));
  f.get(rowStride).i32(2).shl().set(rowBytes);
  f.get(colStride).i32(2).shl().set(colBytes);
  f.get(K).i32(-4).and().set(k4);
  f.get(packed).set(out);
  f.forRange(
    t,
    () => f.i32(0),
    () => f.get(M),
    4,
    () => {
      f.get(a).get(t).get(rowBytes).mul().add().set(from);
      // one float at a time, for k from `first` on
      const oneByOne = (first: () => void) =>
        f.forRange(
          k,
          first,
          () => f.get(K),
          1,
          () => {
            f.forRange(
              r,
              () => f.i32(0),
              () => f.i32(4),
              1,
              () => {
                f.get(out).get(r).i32(2).shl().add();
                f.get(from).get(r).get(rowBytes).mul().add().get(k).get(colBytes).mul().add().f32Load();
                f.f32Store();
              },
            );
            f.get(out).i32(16).add().set(out);
          },
        );
      f.get(colStride).i32(1).sub().eqz();
      f.ifElse(
        () => {
          // row-major A: 4 rows × 4 k at a time, transposed in registers, then the last K mod 4
          f.forRange(
            k,
            () => f.i32(0),
            () => f.get(k4),
            4,
            () => {
              f.get(from).get(k).i32(2).shl().add().load().set(r0);
              f.get(from).get(rowBytes).add().get(k).i32(2).shl().add().load().set(r1);
              f.get(from).get(rowBytes).i32(1).shl().add().get(k).i32(2).shl().add().load().set(r2);
              f.get(from).get(rowBytes).i32(3).mul().add().get(k).i32(2).shl().add().load().set(r3);
              emitTranspose4(f, [r0, r1, r2, r3], [t0, t1, t2, t3], out, (i) => 16 * i);
              f.get(out).i32(64).add().set(out);
            },
          );
          oneByOne(() => f.get(k4));
        },
        () => {
          f.get(rowStride).i32(1).sub().eqz();
          f.ifElse(
            // a transposed A (rowStride 1): the 4 floats of each k are next to each other
            () =>
              f.forRange(
                k,
                () => f.i32(0),
                () => f.get(K),
                1,
                () => {
                  f.get(out).get(from).load().store();
                  f.get(from).get(colBytes).add().set(from);
                  f.get(out).i32(16).add().set(out);
                },
              ),
            // any other strides
            () => oneByOne(() => f.i32(0)),
          );
        },
      );
    },
  );
  return f;
}
