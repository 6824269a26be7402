/**
 * A tiny WebAssembly assembler: enough to write a few SIMD kernels by hand, with no compiler installed.
 *
 * JavaScript loops over Float32Arrays are scalar; WebAssembly's 128-bit SIMD works on 4 floats per
 * instruction. The element-wise kernels in this folder that do real arithmetic per element (GELU, tanh,
 * LayerNorm, the softmax gradient) are written with this assembler as small wasm functions that work in
 * place on the TensorFlow.js wasm backend's own memory (the module imports that WebAssembly.Memory).
 *
 * The binary format is documented at https://webassembly.github.io/spec/core/binary/; only what the
 * kernels need is here: i32/f32/f64/v128 locals, loops, loads/stores, arithmetic and comparisons.
 */

export type ValueType = "i32" | "f32" | "f64" | "v128";
export const typeCode: Record<ValueType, number> = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b };

export function unsignedLeb(value: number): number[] {
  const bytes: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (v !== 0);
  return bytes;
}

function signedLeb(value: number): number[] {
  const bytes: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      bytes.push(byte);
      return bytes;
    }
    bytes.push(byte | 0x80);
  }
}

export const vector = (items: number[][]) => [...unsignedLeb(items.length), ...items.flat()];

/** Vectors per pass of `Func.forVectors`: four independent chains of ~20 operations (tanh, exp) overlap well. */
export const VECTORS_PER_PASS = 4;

/** One function: i32 parameters (pointers and counts), typed locals, and a body of instructions. */
export class Func {
  readonly code: number[] = [];
  private readonly localTypes: ValueType[] = [];
  /** Calls to other functions of the module: where each callee's index goes, filled in by `encode`. */
  private readonly callSites: Array<{ at: number; callee: Func }> = [];

  constructor(
    readonly name: string,
    readonly paramCount: number,
    readonly paramTypes: ValueType[] = Array(paramCount).fill("i32"),
  ) {}

  /** `count` new locals of the given type; returns their indices. */
  locals(type: ValueType, count: number): number[] {
    return Array.from({ length: count }, () => this.local(type));
  }

  /** A new local of the given type; returns its index. */
  local(type: ValueType): number {
    this.localTypes.push(type);
    return this.paramCount + this.localTypes.length - 1;
  }

  private emit(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  private simd(op: number, ...rest: number[]): this {
    return this.emit(0xfd, ...unsignedLeb(op), ...rest);
  }

  // variables and constants
  get(i: number): this {
    return this.emit(0x20, ...unsignedLeb(i));
  }
  set(i: number): this {
    return this.emit(0x21, ...unsignedLeb(i));
  }
  tee(i: number): this {
    return this.emit(0x22, ...unsignedLeb(i));
  }
  i32(n: number): this {
    return this.emit(0x41, ...signedLeb(n));
  }
  f32(x: number): this {
    const bytes = new Uint8Array(new Float32Array([x]).buffer);
    return this.emit(0x43, ...bytes);
  }
  f64(x: number): this {
    const bytes = new Uint8Array(new Float64Array([x]).buffer);
    return this.emit(0x44, ...bytes);
  }

  // control: loop(body) repeats body while the body branches back with `continue_`
  block(body: () => void): this {
    this.emit(0x02, 0x40);
    body();
    return this.emit(0x0b);
  }
  loop(body: () => void): this {
    this.emit(0x03, 0x40);
    body();
    return this.emit(0x0b);
  }
  br(depth: number): this {
    return this.emit(0x0c, ...unsignedLeb(depth));
  }
  brIf(depth: number): this {
    return this.emit(0x0d, ...unsignedLeb(depth));
  }
  /** if (cond on stack) { then } */
  if_(then: () => void): this {
    this.emit(0x04, 0x40);
    then();
    return this.emit(0x0b);
  }
  /** if (cond on stack) { then } else { otherwise } */
  ifElse(then: () => void, otherwise: () => void): this {
    this.emit(0x04, 0x40);
    then();
    this.emit(0x05);
    otherwise();
    return this.emit(0x0b);
  }
  select(): this {
    return this.emit(0x1b);
  }
  /**
   * Calls `callee` (another function of the same module) with the arguments on the stack. Its index is only
   * known when the module is put together, so it is written then, into a 5-byte LEB128 (the padded form,
   * valid in WebAssembly) reserved here.
   */
  call(callee: Func): this {
    this.emit(0x10);
    this.callSites.push({ at: this.code.length, callee });
    return this.emit(0x80, 0x80, 0x80, 0x80, 0x00);
  }

  /**
   * for (i = start; i < end; i += step) body — `start` and `end` push an i32 each; i is an i32 local.
   */
  forRange(i: number, start: () => void, end: () => void, step: number, body: () => void): this {
    start();
    this.set(i);
    return this.block(() =>
      this.loop(() => {
        this.get(i);
        end();
        this.emit(0x4f); // i32.ge_u
        this.brIf(1);
        body();
        this.get(i).i32(step).emit(0x6a).set(i); // i += step
        this.br(0);
      }),
    );
  }

  /**
   * for (i = start; i + 16 · groups ≤ end; i += 16 · groups) body(groups), then the vectors left one at a
   * time: body(1), with groups = VECTORS_PER_PASS. i and end are i32 locals in bytes (end − start a multiple
   * of 16); the body addresses its vector g at offset 16 · g from i. Several independent vectors per pass let
   * long chains of arithmetic (tanh, exp: ~20 dependent operations each) overlap; within one loop iteration
   * after another, the CPU's scheduler fills up with one chain's waiting operations and barely overlaps the
   * next (measured: tanh of 1M floats 2.2 ms one vector per pass, 1.15 ms four).
   */
  forVectors(i: number, start: () => void, end: number, body: (count: number) => void): this {
    const groups = VECTORS_PER_PASS;
    start();
    this.set(i);
    this.block(() =>
      this.loop(() => {
        this.get(i)
          .i32(16 * groups)
          .add()
          .get(end)
          .emit(0x4b)
          .brIf(1); // i + 16 · groups > end (i32.gt_u)
        body(groups);
        this.get(i)
          .i32(16 * groups)
          .add()
          .set(i);
        this.br(0);
      }),
    );
    return this.forRange(
      i,
      () => this.get(i),
      () => this.get(end),
      16,
      () => body(1),
    );
  }

  // i32
  add(): this {
    return this.emit(0x6a);
  }
  sub(): this {
    return this.emit(0x6b);
  }
  mul(): this {
    return this.emit(0x6c);
  }
  and(): this {
    return this.emit(0x71);
  }
  or(): this {
    return this.emit(0x72);
  }
  shl(): this {
    return this.emit(0x74);
  }
  shrU(): this {
    return this.emit(0x76);
  }
  ne(): this {
    return this.emit(0x47);
  }
  ltU(): this {
    return this.emit(0x49);
  }
  eqz(): this {
    return this.emit(0x45);
  }

  i32Load(offset = 0): this {
    return this.emit(0x28, 2, ...unsignedLeb(offset));
  }
  i32Store(offset = 0): this {
    return this.emit(0x36, 2, ...unsignedLeb(offset));
  }

  // f32 / f64 scalars
  f32Load(offset = 0): this {
    return this.emit(0x2a, 2, ...unsignedLeb(offset));
  }
  f32Store(offset = 0): this {
    return this.emit(0x38, 2, ...unsignedLeb(offset));
  }
  f32Add(): this {
    return this.emit(0x92);
  }
  f32Sub(): this {
    return this.emit(0x93);
  }
  f32Mul(): this {
    return this.emit(0x94);
  }
  f32Div(): this {
    return this.emit(0x95);
  }
  f32Sqrt(): this {
    return this.emit(0x91);
  }
  f32Max(): this {
    return this.emit(0x97);
  }
  f32Nearest(): this {
    return this.emit(0x90);
  }
  /** i32.trunc_sat_f32_s (NaN gives 0, no trap), and f32.reinterpret_i32 (the bits of an i32 as a float). */
  i32FromF32(): this {
    return this.emit(0xfc, 0x00);
  }
  f32Bits(): this {
    return this.emit(0xbe);
  }
  f64Load(offset = 0): this {
    return this.emit(0x2b, 3, ...unsignedLeb(offset));
  }
  f64Store(offset = 0): this {
    return this.emit(0x39, 3, ...unsignedLeb(offset));
  }
  f64Add(): this {
    return this.emit(0xa0);
  }
  f64Sub(): this {
    return this.emit(0xa1);
  }
  f64Mul(): this {
    return this.emit(0xa2);
  }
  f64Div(): this {
    return this.emit(0xa3);
  }
  f64Sqrt(): this {
    return this.emit(0x9f);
  }
  f64FromF32(): this {
    return this.emit(0xbb); // f64.promote_f32
  }
  f32FromF64(): this {
    return this.emit(0xb6); // f32.demote_f64
  }
  f64FromI32(): this {
    return this.emit(0xb8); // f64.convert_i32_u
  }

  // v128 (4 × f32)
  load(offset = 0): this {
    return this.simd(0x00, 0, ...unsignedLeb(offset)); // alignment hint 1 byte: tensors need not be 16-aligned
  }
  store(offset = 0): this {
    return this.simd(0x0b, 0, ...unsignedLeb(offset));
  }
  splat(): this {
    return this.simd(0x13); // f32x4.splat
  }
  /** v128.load32_splat: one float from memory into all 4 lanes. */
  loadSplat(offset = 0): this {
    return this.simd(0x09, 0, ...unsignedLeb(offset));
  }
  lane(index: number): this {
    return this.simd(0x1f, index); // f32x4.extract_lane
  }
  vadd(): this {
    return this.simd(0xe4);
  }
  vsub(): this {
    return this.simd(0xe5);
  }
  /** f32x4.relaxed_madd(a, b, c) = a·b + c, fused (one rounding) where the CPU has FMA: relaxed SIMD. */
  vmadd(): this {
    return this.simd(0x105);
  }
  vmul(): this {
    return this.simd(0xe6);
  }
  /**
   * sum ← x · y + sum (v128 local `sum`; x and y pushed by the callbacks): one fused multiply-add (`vmadd`) where
   * `fused` (relaxed SIMD available), else a multiply then an add.
   */
  multiplyAdd(fused: boolean, x: () => void, y: () => void, sum: number): this {
    if (fused) {
      x();
      y();
      this.get(sum).vmadd();
    } else {
      this.get(sum);
      x();
      y();
      this.vmul().vadd();
    }
    return this.set(sum);
  }
  vdiv(): this {
    return this.simd(0xe7);
  }
  vmin(): this {
    return this.simd(0xe8);
  }
  vmax(): this {
    return this.simd(0xe9);
  }
  vsqrt(): this {
    return this.simd(0xe3);
  }
  vabs(): this {
    return this.simd(0xe0);
  }
  /** f32x4.pmax: b where a < b, else a (one instruction, unlike f32x4.max's NaN rules). */
  vpmax(): this {
    return this.simd(0xeb);
  }
  /** f32x4.pmin: b where b < a, else a (a NaN a stays). */
  vpmin(): this {
    return this.simd(0xea);
  }
  /** f32x4.nearest: round to the nearest integer, ties to even. */
  vnearest(): this {
    return this.simd(0x6a);
  }
  /** i32x4.trunc_sat_f32x4_s, then i32x4 add and shift left by a scalar: to build powers of two. */
  vtruncToInt(): this {
    return this.simd(0xf8);
  }
  vintAdd(): this {
    return this.simd(0xae);
  }
  vintShl(): this {
    return this.simd(0xab);
  }
  vintSplat(): this {
    return this.simd(0x11);
  }
  vgt(): this {
    return this.simd(0x44); // f32x4.gt → lane mask
  }
  /** i8x16.shuffle selecting 32-bit lanes: lanes[k] in 0-3 picks from the first operand, 4-7 the second. */
  shuffle32(lanes: [number, number, number, number]): this {
    return this.simd(0x0d, ...lanes.flatMap((lane) => [4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3]));
  }
  vand(): this {
    return this.simd(0x4e);
  }
  vor(): this {
    return this.simd(0x50);
  }
  vbitselect(): this {
    return this.simd(0x52); // v128.bitselect(a, b, mask): a where mask bits are 1, else b
  }
  /** f64x2 from the low two lanes of an f32x4, and the f64x2 arithmetic used by exact accumulations. */
  promoteLow(): this {
    return this.simd(0x5f);
  }
  f64x2Add(): this {
    return this.simd(0xf0);
  }
  f64x2Lane(index: number): this {
    return this.simd(0x21, index);
  }
  /** Sum of an f32x4's 4 lanes (as f32). */
  horizontalSum(v: number): this {
    return this.get(v).lane(0).get(v).lane(1).f32Add().get(v).lane(2).get(v).lane(3).f32Add().f32Add();
  }

  /** The body's bytes, locals first; `indexOf` gives the module index of each function it calls. */
  encode(indexOf: (callee: Func) => number): number[] {
    for (const { at, callee } of this.callSites) {
      const index = indexOf(callee);
      if (index < 0) throw new Error(`${this.name} calls ${callee.name}, which is not in its module`);
      for (let b = 0; b < 5; b++) this.code[at + b] = ((index >>> (7 * b)) & 0x7f) | (b < 4 ? 0x80 : 0);
    }
    const groups: number[][] = [];
    for (const type of this.localTypes) groups.push([1, typeCode[type]]);
    const body = [...vector(groups), ...this.code, 0x0b];
    return [...unsignedLeb(body.length), ...body];
  }
}
