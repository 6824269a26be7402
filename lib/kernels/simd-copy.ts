/**
 * The SIMD routines of simd.ts that move floats and do no arithmetic: copies of blocks of rows (Transpose,
 * SplitV, Concat) and transposes in 4 × 4 blocks.
 */
import { Func } from "./wasm-asm.js";

export function copyBlocksFunc(): Func {
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

export function transposeFunc(): Func {
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
