/**
 * The SIMD routines of simd.ts that add rows up: column sums (Sum), rows plus a broadcast row (Add) and the
 * scatter-add of an embedding gradient (UnsortedSegmentSum).
 */
import { Func } from "./wasm-asm.js";

export function columnSumsFunc(): Func {
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

export function addRowsFunc(): Func {
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

export function scatterAddRowsFunc(): Func {
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
