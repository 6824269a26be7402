/**
 * The custom WebAssembly kernels (lib/kernels/) and fused ops (lib/kernels/fused.ts) must compute what
 * TensorFlow.js computes: every case runs on the cpu backend (tfjs's reference kernels) and on wasm with
 * the custom kernels, forward and gradients, on random shapes including odd sizes, and the results must
 * agree within 1e-5 relative to the largest magnitude of the reference (float32 sums in another order
 * differ by about 1e-7 of that).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  GPT,
  IGNORE_INDEX,
  LayerNorm,
  Random,
  crossEntropy,
  geluTanh,
  initBackend,
  scaledDotProductAttention,
  tf,
} from "gpt-course";
import { freeGradientMemoryEarly, keepGradientMemoryUntilEnd } from "../lib/backend/gradient-memory.ts";
import { sumRows } from "../lib/kernels/reduce.ts";
import {
  fusedAdamWUpdate,
  fusedAttention,
  fusedGatherRows,
  fusedCrossEntropy,
  fusedGeluTanh,
  fusedLayerNorm,
  fusedLinear,
  fusedSplitHeads,
} from "../lib/kernels/fused.ts";

const TOLERANCE = 1e-5;

// Two threads here whatever vitest.config.ts says for other files: the kernels' parallel paths (threads.ts) are
// the ones to test.
process.env.GPT_WASM_THREADS = "2";

/** Max |a − b| / max |b|, or the absolute difference when b is all zeros. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let maxDiff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (!(Number.isNaN(e) && Number.isNaN(a))) return Infinity;
      continue;
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a !== e) return Infinity;
      continue;
    }
    maxDiff = Math.max(maxDiff, Math.abs(a - e));
    scale = Math.max(scale, Math.abs(e));
  }
  return scale > 0 ? maxDiff / scale : maxDiff;
}

const random = new Random(2024);
function randomData(size: number, scale = 1): Float32Array {
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    // sum of uniforms: roughly normal, deterministic
    data[i] = (random.next() + random.next() + random.next() - 1.5) * 2 * scale;
  }
  return data;
}
const randomInt = (lo: number, hi: number) => lo + random.int(hi - lo + 1);

/**
 * Runs `f` on inputs built from `data` on the cpu backend and on wasm; returns both results (the outputs
 * and, when `withGrads`, the gradients of sum(outputs · weights) with respect to every float input).
 */
async function onBoth(
  inputs: Array<{ data: Float32Array | Int32Array; shape: number[]; dtype?: "float32" | "int32" }>,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  withGrads = true,
): Promise<{ cpu: Float32Array[]; wasm: Float32Array[] }> {
  const run = async (backend: string): Promise<Float32Array[]> => {
    await tf.setBackend(backend);
    return tf.tidy(() => {
      const xs = inputs.map(({ data, shape, dtype }) => tf.tensor(data, shape, dtype ?? "float32"));
      const out = f(...xs);
      const results = [Float32Array.from(out.dataSync())];
      if (withGrads) {
        const weights = tf.tensor(randomWeights(out.size), out.shape);
        const floatIndices = xs.map((x, i) => (x.dtype === "float32" ? i : -1)).filter((i) => i >= 0);
        const grads = tf.grads((...fx: tf.Tensor[]) => {
          const all = xs.map((x, i) => (floatIndices.includes(i) ? fx[floatIndices.indexOf(i)] : x));
          return f(...all)
            .mul(weights)
            .sum();
        })(floatIndices.map((i) => xs[i]));
        for (const g of grads) results.push(Float32Array.from(g.dataSync()));
      }
      return results;
    });
  };
  weightSeed = random.getState();
  const cpu = await run("cpu");
  random.setState(weightSeed);
  const wasm = await run("wasm");
  return { cpu, wasm };
}
let weightSeed = 0;
function randomWeights(size: number): Float32Array {
  return randomData(size);
}

function expectClose(results: { cpu: Float32Array[]; wasm: Float32Array[] }, label: string): void {
  results.cpu.forEach((expected, i) => {
    const error = relativeError(results.wasm[i], expected);
    expect(error, `${label}: ${i === 0 ? "output" : `gradient ${i}`} relative error ${error}`).toBeLessThanOrEqual(
      TOLERANCE,
    );
  });
}

beforeAll(async () => {
  await initBackend("wasm"); // registers the custom kernels
  await tf.setBackend("cpu");
});

describe("custom wasm kernels match tfjs's cpu kernels", () => {
  it("are registered on wasm", async () => {
    const { wasmKernelNames } = await import("../lib/kernels/index.ts");
    const { kernelsOf } = await import("../lib/kernels/index.ts");
    const kernels = wasmKernelNames.flatMap((name) => kernelsOf(name));
    for (const name of kernels) expect(tf.getKernel(name, "wasm"), name).toBeDefined();
  });

  it("BatchMatMul: 2-D, batched, broadcast batch, every transpose combination, odd sizes", async () => {
    for (let trial = 0; trial < 24; trial++) {
      const M = randomInt(1, 37);
      const K = randomInt(1, 41);
      const N = randomInt(1, 29);
      const transposeA = trial % 2 === 1;
      const transposeB = (trial >> 1) % 2 === 1;
      const kind = trial % 3; // 0: 2-D, 1: batched (2, 3), 2: a batched, b broadcast (1 batch)
      const batchA = kind === 0 ? [] : [2, randomInt(1, 3)];
      const batchB = kind === 0 ? [] : kind === 1 ? batchA : [1, 1];
      const aShape = [...batchA, ...(transposeA ? [K, M] : [M, K])];
      const bShape = [...batchB, ...(transposeB ? [N, K] : [K, N])];
      const results = await onBoth(
        [
          { data: randomData(tf.util.sizeFromShape(aShape)), shape: aShape },
          { data: randomData(tf.util.sizeFromShape(bShape)), shape: bShape },
        ],
        (a, b) => tf.matMul(a, b, transposeA, transposeB),
        kind !== 2, // tfjs's matMul gradient does not support broadcast batch dimensions (on any backend)
      );
      expectClose(results, `matMul ${aShape} x ${bShape} tA=${transposeA} tB=${transposeB}`);
    }
  });

  it("BatchMatMul: a Linear layer's products (gemm.ts): K in chunks, transposed A, packed or not, remainders", async () => {
    for (const [aShape, bShape, transposeA, transposeB] of [
      [[601, 37], [601, 203], true, false], // dW = xᵀ·dy: K = 601 in 3 chunks, A read through strides (37 rows)
      [[512, 64], [512, 200], true, false], // dW with M, K multiples of 4: A transposed first; shared out among threads
      [[403, 19], [301, 19], false, true], // dx = dy·Wᵀ: B packed through strides
      [
        [300, 128],
        [128, 65],
      ], // forward with the lm_head's 65 columns: a last strip of 1 column, 300 = 4·75 rows
      [
        [1027, 96],
        [96, 130],
      ], // 1027 = 4·256 + 3 rows: the last 3 one at a time
      [
        [1, 128],
        [128, 384],
      ], // generation, one row: B read as it is (not packed)
      [
        [6, 300],
        [300, 24],
      ], // a few rows against an unpacked B, K in 2 chunks
      [[1, 771], [1400, 771], false, true], // generation's tied head x·wteᵀ: dot products over B's rows, K mod 8 = 3
      [[2, 768], [1366, 768], false, true], // two rows: each its own dot products
      [[3, 768], [1366, 768], false, true], // three rows: B packed again
      [[37, 50], [601, 50], false, true], // a wide B: column blocks of 512, the last strip 1 column, 1 row left over
      [[6, 300], [300, 1040], false, false], // a wide row-major B read as it is, in column blocks, K in 2 chunks
      [[500, 1], [16, 1], false, true], // K = 1: A's rows and columns both 1 float apart
      [[1, 40], [1, 24], true, false], // K = 1, A transposed
    ] as Array<[number[], number[], boolean?, boolean?]>) {
      const results = await onBoth(
        [
          { data: randomData(tf.util.sizeFromShape(aShape)), shape: aShape },
          { data: randomData(tf.util.sizeFromShape(bShape)), shape: bShape },
        ],
        (a, b) => tf.matMul(a, b, transposeA, transposeB),
      );
      expectClose(results, `matMul ${aShape} x ${bShape} tA=${transposeA} tB=${transposeB}`);
    }
  });

  it("BatchMatMul: a with batch 1 against batched b", async () => {
    const results = await onBoth(
      [
        { data: randomData(5 * 7), shape: [1, 5, 7] },
        { data: randomData(3 * 7 * 4), shape: [3, 7, 4] },
      ],
      (a, b) => tf.matMul(a, b),
      false, // forward only: tfjs's matMul gradient does not support broadcast batch dimensions
    );
    expectClose(results, "matMul [1,5,7] x [3,7,4]");
  });

  it("Transpose: all permutations of rank 2-5, odd sizes, float32 and int32", async () => {
    const permutations = (n: number): number[][] =>
      n === 1
        ? [[0]]
        : permutations(n - 1).flatMap((p) =>
            Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]),
          );
    for (const rank of [2, 3, 4, 5]) {
      for (const perm of permutations(rank)) {
        const shape = Array.from({ length: rank }, () => randomInt(1, rank === 5 ? 4 : 7));
        const size = tf.util.sizeFromShape(shape);
        const results = await onBoth([{ data: randomData(size), shape }], (x) => tf.transpose(x, perm));
        expectClose(results, `transpose ${shape} by ${perm}`);
        const ints = Int32Array.from(randomData(size, 100), Math.round);
        const intResults = await onBoth(
          [{ data: ints, shape, dtype: "int32" }],
          (x) => tf.transpose(x, perm).toFloat(),
          false,
        );
        expectClose(intResults, `int32 transpose ${shape} by ${perm}`);
      }
    }
    // multiples of 4 (the SIMD 4 × 4 block path), incl. column counts that are not a multiple of its 32-column tiles
    for (const [shape, perm] of [
      [
        [8, 12],
        [1, 0],
      ],
      [
        [36, 44],
        [1, 0],
      ],
      [
        [4, 132],
        [1, 0],
      ],
      [
        [3, 16, 20],
        [0, 2, 1],
      ],
      [
        [2, 128, 32],
        [0, 2, 1],
      ],
    ] as Array<[number[], number[]]>) {
      const results = await onBoth([{ data: randomData(tf.util.sizeFromShape(shape)), shape }], (x) =>
        tf.transpose(x, perm),
      );
      expectClose(results, `transpose ${shape} by ${perm}`);
      expect(Array.from(results.wasm[0])).toEqual(Array.from(results.cpu[0])); // a transpose is exact
    }
    // the layouts attention uses
    const shape = [3, 9, 4, 5];
    const results = await onBoth([{ data: randomData(3 * 9 * 4 * 5), shape }], (x) => tf.transpose(x, [0, 2, 1, 3]));
    expectClose(results, "split heads");
  });

  it("Identity (clone) shares data but behaves like a copy", async () => {
    const results = await onBoth([{ data: randomData(33), shape: [3, 11] }], (x) => tf.clone(x).mul(2));
    expectClose(results, "clone");
    await tf.setBackend("wasm");
    const x = tf.tensor([1, 2, 3]);
    const y = tf.clone(x);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    y.dispose();
    await tf.setBackend("cpu");
  });

  it("Pow: integer exponents -3..4 and fallbacks (fractional exponent, tensor exponent)", async () => {
    for (const exponent of [-3, -1, 0, 1, 2, 3, 4]) {
      const shape = [randomInt(1, 9), randomInt(1, 13)];
      const data = randomData(tf.util.sizeFromShape(shape)).map((v) =>
        exponent < 0 ? v + Math.sign(v || 1) * 0.5 : v,
      );
      const results = await onBoth([{ data, shape }], (x) => tf.pow(x, exponent));
      expectClose(results, `pow ${exponent}`);
    }
    const positive = randomData(30).map((v) => Math.abs(v) + 0.1);
    expectClose(await onBoth([{ data: positive, shape: [5, 6] }], (x) => tf.pow(x, 1.5)), "pow 1.5");
    expectClose(
      await onBoth(
        [
          { data: positive, shape: [5, 6] },
          { data: randomData(30), shape: [5, 6] },
        ],
        (x, e) => tf.pow(x, e),
      ),
      "pow tensor",
    );
  });

  it("Add: one shape, a bias row on either side, other broadcasts and int32 (fallback), odd sizes", async () => {
    for (const [aShape, bShape] of [
      [
        [3, 37, 5],
        [3, 37, 5],
      ], // one shape, 555 elements: a SIMD part and a tail
      [
        [300, 130],
        [300, 130],
      ], // big enough to be shared out among threads
      [[7, 13, 65], [65]], // a bias row, width 65 (not a multiple of 4)
      [
        [1, 40],
        [600, 40],
      ], // the row first
      [
        [1, 1, 24],
        [2000, 24],
      ], // shared out
      [
        [5, 1],
        [5, 3],
      ], // another broadcast: tfjs's own kernel
    ]) {
      const results = await onBoth(
        [
          { data: randomData(tf.util.sizeFromShape(aShape)), shape: aShape },
          { data: randomData(tf.util.sizeFromShape(bShape)), shape: bShape },
        ],
        (a, b) => tf.add(a, b),
      );
      expectClose(results, `add ${aShape} + ${bShape}`);
    }
    await tf.setBackend("wasm");
    expect(
      Array.from(tf.add(tf.tensor([1, 2, 3], [3], "int32"), tf.tensor([10, 20, 30], [3], "int32")).dataSync()),
    ).toEqual([11, 22, 33]);
    await tf.setBackend("cpu");
  });

  it("Tanh: across its whole range, incl. saturation, tiny values, ±Infinity and NaN", async () => {
    const data = new Float32Array(4001);
    for (let i = 0; i < 4001; i++) data[i] = (i - 2000) / 200; // -10 .. 10
    const results = await onBoth([{ data, shape: [4001] }], (x) => tf.tanh(x));
    expectClose(results, "tanh");
    // per-element relative accuracy, not only relative to the largest value
    for (let i = 0; i < data.length; i++) {
      const expected = results.cpu[0][i];
      if (expected !== 0) expect(Math.abs(results.wasm[0][i] - expected) / Math.abs(expected)).toBeLessThan(TOLERANCE);
    }
    const special = Float32Array.from([0, -0, 1e-8, -1e-8, 3e-4, Infinity, -Infinity, NaN, 50, -50]);
    const specialResults = await onBoth([{ data: special, shape: [special.length] }], (x) => tf.tanh(x), false);
    expectClose(specialResults, "tanh special values");
  });

  it("Exp: every element to float32 precision, from underflow (0) to overflow (+∞), NaN, odd lengths", async () => {
    const data = new Float32Array(4003);
    for (let i = 0; i < data.length; i++) data[i] = -110 + (200 * i) / (data.length - 1); // -110 .. 90
    data.set([0, -0, 1e-8, -1e-8, Infinity, -Infinity, NaN, 88.72, 88.73, 88.4, 88.37, -87.33, -87.34], 0);
    const results = await onBoth([{ data, shape: [data.length] }], (x) => tf.exp(x), false);
    const [wasm, cpu] = [results.wasm[0], results.cpu[0]];
    for (let i = 0; i < data.length; i++) {
      const label = `exp(${data[i]}) = ${wasm[i]}, expected ${cpu[i]}`;
      if (Number.isNaN(cpu[i]) || !Number.isFinite(cpu[i])) expect(Object.is(wasm[i], cpu[i]), label).toBe(true);
      else if (cpu[i] < 1.2e-38)
        expect(wasm[i] >= 0 && wasm[i] < 1.2e-38, label).toBe(true); // denormals: 0
      else expect(Math.abs(wasm[i] - cpu[i]) / cpu[i], label).toBeLessThan(TOLERANCE);
    }
    // and its gradient (dx = dy · e^x), on 3-D input of odd size
    const moderate = await onBoth([{ data: randomData(3 * 5 * 7, 3), shape: [3, 5, 7] }], (x) => tf.exp(x));
    expectClose(moderate, "exp and its gradient");
  });

  it("GatherV2: axes 0-2, odd sizes, repeated ids, float32 and int32; out-of-range ids throw", async () => {
    for (const [shape, axis, count] of [
      [[65, 128], 0, 300],
      [[7, 3], 0, 11],
      [[4, 9, 5], 1, 13],
      [[3, 4, 6], 2, 5],
    ] as Array<[number[], number, number]>) {
      const ids = Int32Array.from({ length: count }, (_, i) => (i * 5 + 3) % shape[axis]);
      const results = await onBoth(
        [
          { data: randomData(tf.util.sizeFromShape(shape)), shape },
          { data: ids, shape: [count], dtype: "int32" },
        ],
        (x, i) => tf.gather(x, i, axis),
      );
      expectClose(results, `gather ${shape} axis ${axis}`);
      const ints = Int32Array.from(randomData(tf.util.sizeFromShape(shape), 50), Math.round);
      const intResults = await onBoth(
        [
          { data: ints, shape, dtype: "int32" },
          { data: ids, shape: [count], dtype: "int32" },
        ],
        (x, i) => tf.gather(x, i, axis).toFloat(),
        false,
      );
      expectClose(intResults, `int32 gather ${shape} axis ${axis}`);
    }
    await tf.setBackend("wasm");
    expect(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], "int32"))).toThrow(/not in \[0, 2\]/);
    await tf.setBackend("cpu");
  });

  it("UnsortedSegmentSum (missing in tfjs-backend-wasm) and the embedding gradient that uses it", async () => {
    const segments = Int32Array.from({ length: 37 }, (_, i) => (i * 7) % 9);
    const direct = await onBoth(
      [
        { data: randomData(37 * 5), shape: [37, 5] },
        { data: segments, shape: [37], dtype: "int32" },
      ],
      (x, ids) => tf.unsortedSegmentSum(x, ids as tf.Tensor1D, 11),
      false,
    );
    expectClose(direct, "unsortedSegmentSum");
    const ids = Int32Array.from({ length: 2 * 17 }, (_, i) => (i * 3) % 13);
    const lookup = await onBoth(
      [
        { data: randomData(13 * 6), shape: [13, 6] },
        { data: ids, shape: [2, 17], dtype: "int32" },
      ],
      (table, i) => fusedGatherRows(table as tf.Tensor2D, i) ?? tf.gather(table, i), // as Embedding.forward
    );
    expectClose(lookup, "embedding lookup (forward and table gradient)");
  });

  it("Sum: leading axes (bias gradients), keepDims, and other axes (fallback)", async () => {
    const cases: Array<[number[], number | number[], boolean]> = [
      [[37, 13], 0, false],
      [[5, 7, 11], [0, 1], false],
      [[5, 7, 11], [0, 1], true],
      [[5, 7, 11], 2, false],
      [[5, 7, 11], [0, 2], false],
      [[9, 3], -1, true],
      [[37, 16], 0, false], // width a multiple of 4: the SIMD column sums
      [[6, 5, 12], [0, 1], true],
    ];
    for (const [shape, axis, keepDims] of cases) {
      const results = await onBoth([{ data: randomData(tf.util.sizeFromShape(shape)), shape }], (x) =>
        tf.sum(x, axis, keepDims),
      );
      expectClose(results, `sum ${shape} axis ${axis} keepDims ${keepDims}`);
    }
    // the SIMD column sums add in float64 in sumRows' order: bit-identical to it
    await tf.setBackend("wasm");
    const data = randomData(1023 * 20);
    const expected = new Float32Array(20);
    sumRows(data, 1023, 20, expected);
    const x = tf.tensor2d(data, [1023, 20]);
    const summed = tf.sum(x, 0);
    expect(Array.from(summed.dataSync())).toEqual(Array.from(expected));
    tf.dispose([x, summed]);
    await tf.setBackend("cpu");
  });
});

describe("fused ops match the composed maths on the cpu backend", () => {
  it("fusedAttention is used on wasm and not on cpu", async () => {
    await tf.setBackend("wasm");
    const q = tf.randomNormal([1, 2, 4, 8]);
    expect(fusedAttention(q, q, q, { causal: true })).toBeDefined();
    expect(fusedAttention(q, q, q, { causal: true, mask: tf.ones([1, 1, 1, 4]) })).toBeUndefined();
    expect(fusedAttention(q, q, q, { causal: true, dropout: (w: tf.Tensor) => w })).toBeUndefined();
    const documentIds = tf.tensor2d([[0, 0, 1, 1]], undefined, "int32");
    expect(fusedAttention(q, q, q, { causal: true, documentIds })).toBeDefined();
    await tf.setBackend("cpu");
    expect(fusedAttention(q, q, q, { causal: true })).toBeUndefined();
    tf.dispose([q, documentIds]);
  });

  it("scaledDotProductAttention over packed rows (document ids): output, weights and gradients", async () => {
    for (const { B, nh, T, hs, interleaved } of [
      { B: 2, nh: 3, T: 9, hs: 5 }, // head size not a multiple of 4: the full-row path
      { B: 3, nh: 2, T: 3, hs: 4 }, // ≤ 4 queries
      { B: 2, nh: 4, T: 32, hs: 16 }, // block by block
      { B: 2, nh: 2, T: 11, hs: 8 }, // block by block, T not a multiple of 4
      { B: 2, nh: 2, T: 12, hs: 8, interleaved: true }, // a document in pieces: the full-row path
    ]) {
      // each row: documents 0, 1, 2, ... of random lengths, then padding (−1); or documents 0, 1, 2 in turn
      const ids = new Int32Array(B * T);
      for (let b = 0; b < B; b++) {
        let document = 0;
        const used = T - randomInt(0, 2);
        for (let t = 0; t < T; t++) {
          if (t > 0 && random.int(3) === 0) document++;
          ids[b * T + t] = interleaved ? Math.floor(t / 2) % 3 : t < used ? document : -1;
        }
      }
      const shape = [B, nh, T, hs];
      const inputs = [
        ...[0, 1, 2].map(() => ({ data: randomData(B * nh * T * hs, 2), shape })),
        { data: ids, shape: [B, T], dtype: "int32" as const },
      ];
      const label = `attention over documents B=${B} nh=${nh} T=${T} hs=${hs}`;
      const attend = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, documentIds: tf.Tensor) =>
        scaledDotProductAttention(q, k, v, { causal: true, documentIds });
      expectClose(await onBoth(inputs, (q, k, v, d) => attend(q, k, v, d).output), `${label} (output)`);
      const weights = await onBoth(inputs, (q, k, v, d) => attend(q, k, v, d).weights, false);
      expectClose(weights, `${label} (weights)`);
      // no weight across documents (the cpu reference builds its mask independently, with documentMask)
      weights.wasm[0].forEach((w, i) => {
        const [b, , query, key] = [Math.floor(i / (nh * T * T)), 0, Math.floor(i / T) % T, i % T];
        if (ids[b * T + query] !== ids[b * T + key] || key > query) expect(w).toBe(0);
      });
    }
  });

  it("scaledDotProductAttention: causal and not, Tq < Tk (KV cache), odd sizes, output, weights and gradients", async () => {
    const cases: Array<{ lead: number[]; Tq: number; Tk: number; hs: number; hv: number; causal: boolean }> = [
      { lead: [2, 3], Tq: 7, Tk: 7, hs: 5, hv: 5, causal: true },
      { lead: [3, 2], Tq: 13, Tk: 13, hs: 8, hv: 8, causal: false },
      { lead: [2, 2], Tq: 1, Tk: 9, hs: 4, hv: 4, causal: true },
      { lead: [1, 4], Tq: 3, Tk: 11, hs: 6, hv: 7, causal: true },
      { lead: [5], Tq: 17, Tk: 17, hs: 3, hv: 9, causal: true },
      { lead: [2, 4], Tq: 32, Tk: 32, hs: 16, hv: 16, causal: true },
      { lead: [2, 3], Tq: 6, Tk: 14, hs: 8, hv: 12, causal: true }, // block path, Tq < Tk (a prompt after a cache)
      { lead: [3], Tq: 21, Tk: 21, hs: 36, hv: 20, causal: false },
      { lead: [2, 2], Tq: 9, Tk: 4, hs: 4, hv: 8, causal: false }, // cross-attention, more queries than keys (+2 and more)
      { lead: [2], Tq: 6, Tk: 5, hs: 8, hv: 4, causal: false },
    ];
    for (const { lead, Tq, Tk, hs, hv, causal } of cases) {
      const shapes = [
        [...lead, Tq, hs],
        [...lead, Tk, hs],
        [...lead, Tk, hv],
      ];
      const inputs = shapes.map((shape) => ({ data: randomData(tf.util.sizeFromShape(shape), 2), shape }));
      const label = `attention ${lead} Tq=${Tq} Tk=${Tk} hs=${hs} hv=${hv} causal=${causal}`;
      const output = await onBoth(inputs, (q, k, v) => scaledDotProductAttention(q, k, v, { causal }).output);
      expectClose(output, `${label} (output)`);
      // the weights too, and a loss that uses both outputs (the weights' gradient flows into the fused one)
      const weights = await onBoth(inputs, (q, k, v) => scaledDotProductAttention(q, k, v, { causal }).weights, false);
      expectClose(weights, `${label} (weights)`);
      const both = await onBoth(inputs, (q, k, v) => {
        const { output: o, weights: w } = scaledDotProductAttention(q, k, v, { causal });
        return tf.concat([o.reshape([-1]), w.reshape([-1])]);
      });
      expectClose(both, `${label} (output and weights)`);
    }
  });
});

describe("the fused cross-entropy matches the composed maths on the cpu backend", () => {
  it("loss and gradient: odd vocabularies, ignored targets, ranks 2 and 3, large logits, all ignored", async () => {
    const cases: Array<{ shape: number[]; V: number; scale: number; ignoreEvery?: number }> = [
      { shape: [37], V: 65, scale: 3 }, // the course model's characters: 65 = 4 · 16 + 1
      { shape: [3, 11], V: 7, scale: 2, ignoreEvery: 4 }, // prompts and padding ignored
      { shape: [2, 5], V: 1536, scale: 4 }, // the chat model's vocabulary
      { shape: [9], V: 3, scale: 40 }, // large logits: e^x far outside float32 without the max
      { shape: [4], V: 12, scale: 1, ignoreEvery: 1 }, // every target ignored: loss 0, gradient 0
    ];
    for (const { shape, V, scale, ignoreEvery } of cases) {
      const n = tf.util.sizeFromShape(shape);
      const targets = Int32Array.from({ length: n }, (_, i) =>
        ignoreEvery !== undefined && i % ignoreEvery === 0 ? IGNORE_INDEX : (i * 7 + 3) % V,
      );
      const results = await onBoth(
        [
          { data: randomData(n * V, scale), shape: [...shape, V] },
          { data: targets, shape, dtype: "int32" },
        ],
        (logits, t) => crossEntropy(logits, t),
      );
      expectClose(results, `crossEntropy ${shape} × ${V}`);
    }
    await tf.setBackend("wasm");
    const logits = tf.zeros([2, 3]);
    const targets = tf.tensor1d([0, 2], "int32");
    const fused = fusedCrossEntropy(logits, targets, IGNORE_INDEX);
    expect(fused).toBeDefined(); // the test above compared the fused kernel, not the composed maths twice
    expect(fused!.dataSync()[0]).toBeCloseTo(Math.log(3), 6);
    tf.dispose([logits, targets, fused!]);
    await tf.setBackend("cpu");
  });
});

describe("fused LayerNorm and GELU match the composed maths on the cpu backend", () => {
  /** LayerNorm.forward's step-by-step maths (what the cpu backend runs). */
  const composedLayerNorm = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps: number) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return x
      .sub(mean)
      .mul(tf.rsqrt(variance.add(eps)))
      .mul(g)
      .add(b);
  };

  it("fused kernels are used on wasm only", async () => {
    await tf.setBackend("wasm");
    const x = tf.randomNormal([3, 4]);
    expect(fusedLayerNorm(x, tf.ones([4]), tf.zeros([4]), 1e-5)).toBeDefined();
    expect(fusedGeluTanh(x)).toBeDefined();
    await tf.setBackend("cpu");
    expect(fusedLayerNorm(x, tf.ones([4]), tf.zeros([4]), 1e-5)).toBeUndefined();
    expect(fusedGeluTanh(x)).toBeUndefined();
  });

  it("LayerNorm: forward and gradients (x, γ, β), odd widths, 2-D to 4-D, large offsets", async () => {
    const cases: Array<[number[], number, number]> = [
      [[7, 5], 1e-5, 0],
      [[2, 3, 13], 1e-5, 0],
      [[2, 2, 3, 64], 1e-5, 3],
      [[70, 128], 1e-5, 0], // > 32 rows: the SIMD kernel's blocked float64 sums of dγ, dβ
      [[3, 33, 16], 1e-5, 1],
      [[5, 1], 1e-5, 0], // one feature: x̂ = 0
      [[4, 9], 0.1, 10], // mean large next to the spread (more and float32 reference maths itself loses digits)
    ];
    for (const [shape, eps, offset] of cases) {
      const C = shape[shape.length - 1];
      const results = await onBoth(
        [
          { data: randomData(tf.util.sizeFromShape(shape)).map((v) => v + offset), shape },
          { data: randomData(C).map((v) => 1 + v / 2), shape: [C] },
          { data: randomData(C), shape: [C] },
        ],
        (x, g, b) => fusedLayerNorm(x, g, b, eps) ?? composedLayerNorm(x, g, b, eps),
      );
      expectClose(results, `layerNorm ${shape} eps ${eps} offset ${offset}`);
    }
  });

  it("a Linear layer as one kernel (x·W + b): gradients as on cpu, bits as matMul then add on wasm", async () => {
    const cases: Array<[number, number, number]> = [
      [7, 5, 3], // M, K, N: a tail of rows, a strip narrower than 8
      [64, 300, 20], // K in two chunks (the bias goes in with the last)
      [10, 16, 24], // few rows: B read as it lies
      [33, 12, 1100], // B wider than a column block
      [4, 0, 9], // no products: the bias alone
    ];
    for (const [M, K, N] of cases) {
      const inputs = [
        { data: randomData(M * K), shape: [M, K] },
        { data: randomData(K * N), shape: [K, N] },
        { data: randomData(N), shape: [N] },
      ];
      const results = await onBoth(inputs, (x, w, b) =>
        tf.getBackend() === "wasm"
          ? fusedLinear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D)!
          : tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D).add(b),
      );
      expectClose(results, `linear ${M}×${K}×${N}`);
      await tf.setBackend("wasm");
      tf.tidy(() => {
        const [x, w, b] = inputs.map(({ data, shape }) => tf.tensor(data, shape));
        const fused = fusedLinear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D)!;
        const composed = tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D).add(b);
        expect(Array.from(fused.dataSync()), `${M}×${K}×${N} bits`).toEqual(Array.from(composed.dataSync()));
        // db: each column in blocks of 32 rows in float32, the blocks added in float64, whatever the threads
        const dy = tf.tensor2d(randomData(M * N), [M, N]);
        const db = tf.grad((bias: tf.Tensor) =>
          fusedLinear(x as tf.Tensor2D, w as tf.Tensor2D, bias as tf.Tensor1D)!
            .mul(dy)
            .sum(),
        )(b);
        const rows = dy.dataSync();
        const expected = Array.from({ length: N }, (_, n) => {
          let [total, block] = [0, 0];
          for (let m = 0; m < M; m++) {
            block = Math.fround(block + rows[m * N + n]);
            if (m % 32 === 31) [total, block] = [total + block, 0];
          }
          return Math.fround(total + block);
        });
        expect(Array.from(db.dataSync()), `${M}×${K}×${N} db`).toEqual(expected);
      });
      await tf.setBackend("cpu");
    }
    // frozen parameters (trainable false, as under LoRA): the gradient of x alone, the same as the plain ops'
    await tf.setBackend("wasm");
    tf.tidy(() => {
      const x = tf.tensor2d(randomData(6 * 5), [6, 5]);
      const [w, b] = [tf.variable(tf.tensor2d(randomData(5 * 3), [5, 3])), tf.variable(tf.tensor1d(randomData(3)))];
      for (const v of [w, b]) v.trainable = false;
      const dx = tf.grad((x: tf.Tensor) =>
        fusedLinear(x as tf.Tensor2D, w, b)!
          .square()
          .sum(),
      )(x);
      const plain = tf.grad((x: tf.Tensor) =>
        tf
          .matMul(x as tf.Tensor2D, w)
          .add(b)
          .square()
          .sum(),
      )(x);
      expect(Array.from(dx.dataSync())).toEqual(Array.from(plain.dataSync()));
      tf.dispose([w, b]);
    });
    await tf.setBackend("cpu");
  });

  it("splitting heads (q, k, v from c_attn) as one copy: exactly tf.split, reshape and transpose, and back", async () => {
    const cases: Array<[number[], number, number]> = [
      [[2, 5, 3 * 8], 3, 2], // (B, T, 3C), 2 heads of 4
      [[3, 7, 2 * 12], 2, 3], // k and v of cross-attention
      [[1, 4, 6], 1, 2], // one part; heads of 3 floats (not a multiple of 4)
      [[16, 33, 3 * 64], 3, 4],
    ];
    for (const [shape, parts, numHeads] of cases) {
      const [B, T, width] = shape;
      const hs = width / parts / numHeads;
      const composed = (x: tf.Tensor) =>
        (parts === 1 ? [x] : tf.split(x, parts, -1)).map((part) =>
          part.reshape([B, T, numHeads, hs]).transpose([0, 2, 1, 3]),
        );
      const results = await onBoth([{ data: randomData(B * T * width), shape }], (x) =>
        tf.stack(tf.getBackend() === "wasm" ? fusedSplitHeads(x, parts, numHeads)! : composed(x)),
      );
      results.cpu.forEach((expected, i) => expect(results.wasm[i], `${shape} ${i}`).toEqual(expected));
    }
    await tf.setBackend("wasm");
    tf.tidy(() => {
      const shapes = fusedSplitHeads(tf.zeros([2, 3, 12]), 3, 2)?.map((t) => t.shape);
      expect(shapes).toEqual([
        [2, 2, 3, 2],
        [2, 2, 3, 2],
        [2, 2, 3, 2],
      ]);
    });
    await tf.setBackend("cpu");
    tf.tidy(() => {
      expect(fusedSplitHeads(tf.zeros([2, 3, 12]), 3, 2)).toBeUndefined();
    });
  });

  it("LayerNorm module gives the same output on both backends", async () => {
    const data = randomData(2 * 3 * 8, 3);
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const ln = new LayerNorm(8);
      const y = ln.forward(tf.tensor(data, [2, 3, 8]));
      const out = Float32Array.from(y.dataSync());
      ln.dispose();
      return out;
    };
    const cpu = await run("cpu");
    const wasm = await run("wasm");
    expect(relativeError(wasm, cpu)).toBeLessThanOrEqual(TOLERANCE);
    await tf.setBackend("cpu");
  });

  it("GELU (tanh): forward and gradient over [-12, 12], odd sizes", async () => {
    const data = new Float32Array(2401);
    for (let i = 0; i < data.length; i++) data[i] = (i - 1200) / 100;
    const results = await onBoth([{ data, shape: [7, 343] }], (x) => fusedGeluTanh(x) ?? geluTanh(x));
    expectClose(results, "geluTanh");
    const random3d = await onBoth(
      [{ data: randomData(3 * 5 * 11, 3), shape: [3, 5, 11] }],
      (x) => fusedGeluTanh(x) ?? geluTanh(x),
    );
    expectClose(random3d, "geluTanh 3-D");
  });
});

describe("fused AdamW update matches the composed maths on the cpu backend", () => {
  it("one step, with and without weight decay, odd sizes, late steps (small bias corrections)", async () => {
    for (const [size, weightDecay, step] of [
      [1, 0.1, 1],
      [7, 0.1, 3],
      [130, 0, 1],
      [1027, 0.1, 500],
    ] as const) {
      const options = {
        learningRate: 1e-3,
        beta1: 0.9,
        beta2: 0.99,
        epsilon: 1e-8,
        weightDecay,
        correction1: 1 - 0.9 ** step,
        correction2: 1 - 0.99 ** step,
      };
      const results = await onBoth(
        [
          { data: randomData(size), shape: [size] },
          { data: randomData(size, 0.01), shape: [size] },
          { data: randomData(size, 0.01).map((x) => x * x), shape: [size] },
          { data: randomData(size, 0.1), shape: [size] },
        ],
        (w, m, v, g) => {
          const fused = fusedAdamWUpdate(w, m, v, g, options);
          if (fused) return tf.concat([fused.w, fused.m, fused.v]);
          // lib/training/optimizer.ts's maths
          const { learningRate: lr, beta1, beta2, epsilon, correction1, correction2 } = options;
          const mNew = m.mul(beta1).add(g.mul(1 - beta1));
          const vNew = v.mul(beta2).add(g.square().mul(1 - beta2));
          const update = mNew.div(correction1).div(vNew.div(correction2).sqrt().add(epsilon));
          const wNew = w.mul(1 - lr * weightDecay).sub(update.mul(lr));
          return tf.concat([wNew, mNew, vNew]);
        },
        false,
      );
      expectClose(results, `adamW size ${size} weightDecay ${weightDecay} step ${step}`);
    }
  });
});

describe("freeing backward-pass memory early (lib/backend/gradient-memory.ts)", () => {
  /** Gradients of a tiny GPT's loss, as arrays, and the peak tensor memory of computing them. */
  async function gptGradients(): Promise<{ grads: Float32Array[]; peakBytes: number }> {
    const model = new GPT({ vocabSize: 11, contextLength: 8, numLayers: 2, numHeads: 2, embeddingDim: 8, seed: 5 });
    const ids = tf.tensor2d(
      Array.from({ length: 16 }, (_, i) => (i * 7) % 11),
      [2, 8],
      "int32",
    );
    const targets = tf.tensor2d(
      Array.from({ length: 16 }, (_, i) => (i * 3) % 11),
      [2, 8],
      "int32",
    );
    let grads: Float32Array[] = [];
    const info = await tf.profile(() => {
      const { value, grads: g } = tf.variableGrads(() => crossEntropy(model.forward(ids), targets), model.parameters());
      grads = Object.values(g).map((t) => Float32Array.from(t.dataSync()));
      tf.dispose([value, g]);
    });
    tf.dispose([ids, targets]);
    model.dispose();
    return { grads, peakBytes: info.peakBytes };
  }

  for (const backend of ["cpu", "wasm"]) {
    it(`gives the same gradients of a GPT with less peak memory (${backend})`, async () => {
      await tf.setBackend(backend);
      keepGradientMemoryUntilEnd();
      const before = tf.memory().numTensors;
      const reference = await gptGradients();
      expect(tf.memory().numTensors).toBe(before);
      expect(freeGradientMemoryEarly()).toBe(true);
      const early = await gptGradients();
      expect(tf.memory().numTensors).toBe(before); // nothing leaked, nothing disposed twice
      expect(early.grads.length).toBe(reference.grads.length);
      early.grads.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(reference.grads[i])));
      expect(early.peakBytes).toBeLessThan(reference.peakBytes * 0.8);
      await tf.setBackend("cpu");
    });
  }

  it("leaves a caller's dy, pass-through gradients and higher-order gradients intact", async () => {
    await tf.setBackend("wasm");
    expect(freeGradientMemoryEarly()).toBe(true);
    // caller-supplied dy is still usable afterwards
    const x = tf.tensor([1, 2, 3]);
    const dy = tf.tensor([1, 10, 100]);
    const g = tf.grad((t: tf.Tensor) => t.square().reshape([3]).toFloat().mul(2))(x, dy);
    expect(Array.from(g.dataSync())).toEqual([4, 80, 1200]);
    expect(Array.from(dy.dataSync())).toEqual([1, 10, 100]);
    // a custom gradient that hands its incoming dy to both inputs, unchanged
    const passThrough = tf.customGrad((a, b, save) => {
      (save as tf.GradSaveFunc)([a as tf.Tensor]);
      return {
        value: (a as tf.Tensor).add(b as tf.Tensor),
        gradFunc: (d: tf.Tensor | tf.Tensor[]) => [d as tf.Tensor, d as tf.Tensor],
      };
    });
    const x2 = tf.tensor([4, 5, 6]);
    const [ga, gb] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      (passThrough(a.mul(3), b.mul(5)) as tf.Tensor).mul(2).sum(),
    )([x, x2]);
    expect(Array.from(ga.dataSync())).toEqual([6, 6, 6]);
    expect(Array.from(gb.dataSync())).toEqual([10, 10, 10]);
    // second derivative of x³ is 6x
    const second = tf.grad((t: tf.Tensor) =>
      tf
        .grad((u: tf.Tensor) => u.pow(3).sum())(t)
        .sum(),
    )(x);
    expect(Array.from(second.dataSync())).toEqual([6, 12, 18]);
    tf.dispose([x, x2, dy, g, ga, gb, second]);
    await tf.setBackend("cpu");
  });

  it("hands the fused kernels no tensor of zeros for their extra outputs (attention's weights, GELU's tanh)", async () => {
    await tf.setBackend("wasm");
    expect(freeGradientMemoryEarly()).toBe(true);
    const [B, nh, T, hs] = [2, 2, 8, 4];
    const x = tf.randomNormal([B, nh, T, hs], 0, 1, "float32", 5);
    const engine = tf.engine() as unknown as { makeTensor: (...args: unknown[]) => tf.Tensor };
    const makeTensor = engine.makeTensor;
    const made: number[][] = [];
    engine.makeTensor = function (...args: unknown[]) {
      made.push([...(args[1] as number[])]);
      return makeTensor.apply(this, args);
    };
    try {
      // the loss uses attention's output and GELU's result only (flattened first: sum's gradient makes ones of
      // its input's shape)
      const loss = (q: tf.Tensor) =>
        geluTanh(scaledDotProductAttention(q, q, q, { causal: true }).output)
          .reshape([-1])
          .sum();
      tf.dispose(tf.grad(loss)(x));
    } finally {
      engine.makeTensor = makeTensor;
    }
    expect(made.filter((shape) => shape.join() === [B, nh, T, T].join())).toEqual([]); // the weights' shape
    expect(made.filter((shape) => shape.join() === [B, nh, T, hs].join())).toEqual([]); // GELU's tanh's shape
    // a loss of the weights alone (the output's gradient is missing then): the same gradients as on cpu
    const weightsOnly = (backend: string) => {
      tf.setBackend(backend);
      const loss = (q: tf.Tensor) => scaledDotProductAttention(q, q, q, { causal: true }).weights.square().sum();
      return tf.tidy(() => tf.grad(loss)(x).arraySync() as number[][][][]);
    };
    const fused = weightsOnly("wasm");
    const composed = weightsOnly("cpu");
    expect(relativeError(Float32Array.from(fused.flat(3)), Float32Array.from(composed.flat(3)))).toBeLessThan(
      TOLERANCE,
    );
    x.dispose();
    await tf.setBackend("cpu");
  });
});

describe("wasm threads in Node (lib/backend/wasm-threads.ts)", () => {
  /** Runs a script in a fresh Node process (threads are chosen once per process); returns its output. */
  function runScript(
    source: string,
    env: Record<string, string>,
  ): { status: number | null; stdout: string; stderr: string } {
    const dir = mkdtempSync(join(tmpdir(), "gpt-threads-"));
    const file = join(dir, "script.mts"); // ES module: top-level await
    writeFileSync(file, source.replace("LIB", JSON.stringify(resolve(__dirname, "../lib/index.ts"))));
    const tsx = resolve(__dirname, "../node_modules/.bin/tsx");
    const run = spawnSync(tsx, ["--conditions=source", file], {
      encoding: "utf8",
      timeout: 120_000,
      env: { ...process.env, ...env },
    });
    rmSync(dir, { recursive: true, force: true });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  }

  const script = `
    import { initBackend, tf } from LIB;
    const backend = await initBackend("wasm");
    const a = tf.tensor2d(Array.from({ length: 300 * 200 }, (_, i) => Math.sin(i)), [300, 200]);
    const b = tf.tensor2d(Array.from({ length: 200 * 100 }, (_, i) => Math.cos(i)), [200, 100]);
    const c = tf.matMul(a, b).dataSync();
    let sum = 0;
    for (const x of c) sum += x;
    await initBackend("cpu");
    const again = await initBackend("wasm"); // a second start reuses the threads of the first
    console.log(JSON.stringify({ description: backend.description, again: again.description, sum }));
    // no process.exit(): the process must end by itself
  `;

  it("start 2 threads with GPT_WASM_THREADS=2, compute the same, and let the process exit by itself", () => {
    const threaded = runScript(script, { GPT_WASM_THREADS: "2" });
    expect(threaded.status, threaded.stderr).toBe(0); // a hang would hit the timeout (status null)
    const single = runScript(script, { GPT_WASM_THREADS: "0" });
    expect(single.status, single.stderr).toBe(0);
    const t = JSON.parse(threaded.stdout.trim().split("\n").pop()!);
    const s = JSON.parse(single.stdout.trim().split("\n").pop()!);
    expect(t.description).toContain("2 threads");
    expect(t.again).toContain("2 threads");
    expect(s.description).toContain("1 thread");
    expect(Math.abs(t.sum - s.sum)).toBeLessThan(1e-5 * Math.abs(s.sum) + 1e-3);
    // more threads than cores (3 on a 2-core machine): the same sums, bit for bit
    const three = runScript(script, { GPT_WASM_THREADS: "3" });
    expect(three.status, three.stderr).toBe(0);
    const t3 = JSON.parse(three.stdout.trim().split("\n").pop()!);
    expect(t3.description).toContain("3 threads");
    expect(t3.sum).toBe(t.sum);
    // without our SIMD kernels, matmuls go to XNNPACK (and its own thread pool stays on)
    const xnnpack = runScript(script, { GPT_WASM_THREADS: "2", GPT_WASM_SIMD_KERNELS: "0" });
    expect(xnnpack.status, xnnpack.stderr).toBe(0);
    const x = JSON.parse(xnnpack.stdout.trim().split("\n").pop()!);
    expect(x.description).toContain("2 threads");
    expect(Math.abs(x.sum - s.sum)).toBeLessThan(1e-5 * Math.abs(s.sum) + 1e-3);
  });

  it("the kernel threads (lib/kernels/threads.ts) give the same bits as one thread: every shared-out kernel", async () => {
    const { kernelThreads, setKernelThreads } = await import("../lib/kernels/threads.ts");
    const { heapMemory } = await import("../lib/kernels/wasm-heap.ts");
    await tf.setBackend("wasm");
    const threads = kernelThreads(heapMemory(tf.backend() as never));
    expect(threads?.count).toBe(2);
    // each big enough to be shared out: matmuls of ≥ 2M multiply-adds (a row or two: B of ≥ 256K floats),
    // 32K attention scores, 64K elements
    const shapes = {
      a: [256, 96],
      b: [96, 200],
      dy: [256, 200],
      q: [2, 4, 64, 16],
      k: [2, 4, 64, 16],
      v: [2, 4, 64, 16],
      x: [128, 520],
      g: [520],
      h: [520],
      w: [520, 1000],
    };
    const data = Object.values(shapes).map((shape) => randomData(tf.util.sizeFromShape(shape)));
    const run = () =>
      tf.tidy(() => {
        const [a, b, dy, q, k, v, x, g, h, w] = Object.values(shapes).map((shape, i) => tf.tensor(data[i], shape));
        const rows = (n: number) => x.slice([0, 0], [n, 520]) as tf.Tensor2D;
        const layer = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, x: tf.Tensor) =>
          tf.add(
            fusedAttention(q, k, v, { causal: true })!.output.square().sum(),
            fusedGeluTanh(x)!.sum(),
          ) as tf.Scalar;
        const outputs = [
          tf.matMul(a, b),
          tf.matMul(a, dy, true, false),
          tf.matMul(dy, b, false, true),
          ...tf.grads(layer)([q, k, v, x]),
          fusedLayerNorm(x, g, h, 1e-5)!,
          ...tf.grads((x: tf.Tensor, g: tf.Tensor, h: tf.Tensor) =>
            fusedLayerNorm(x, g, h, 1e-5)!.mul(x.reverse(0)).sum(),
          )([x, g, h]),
          fusedLinear(a as tf.Tensor2D, b as tf.Tensor2D, dy.slice([0, 0], [1, 200]).reshape([200]) as tf.Tensor1D)!,
          ...tf.grads((b: tf.Tensor, bias: tf.Tensor) =>
            fusedLinear(a as tf.Tensor2D, b as tf.Tensor2D, bias as tf.Tensor1D)!
              .mul(dy)
              .sum(),
          )([b, dy.slice([1, 0], [1, 200]).reshape([200])]),
          ...fusedSplitHeads(x.reshape([4, 32, 520]), 2, 5)!,
          tf.add(x, x.reverse(0)),
          tf.add(g, x),
          x.sum(0),
          x.reshape([4, 32, 4, 130]).transpose([0, 2, 1, 3]),
          ...tf.split(x, [100, 420], 1),
          // one or two rows (generation): B read in place, columns shared out; with a bias; B packed (997
          // columns: a last strip of 5)
          tf.matMul(rows(1), w),
          fusedLinear(rows(2), w as tf.Tensor2D, w.slice([0, 0], [1, 1000]).reshape([1000]) as tf.Tensor1D)!,
          tf.matMul(rows(1), w.slice([0, 0], [520, 997])),
        ];
        return outputs.map((t) => Array.from(t.dataSync()));
      });
    const parallel = run();
    setKernelThreads(null);
    try {
      const single = run();
      parallel.forEach((values, i) => expect(values, `result ${i}`).toEqual(single[i]));
    } finally {
      setKernelThreads(threads);
      await tf.setBackend("cpu");
    }
  });

  it("a job of more calls than one batch holds (5,000 > 4,096) is split, and every call runs once", async () => {
    const { kernelThreads } = await import("../lib/kernels/threads.ts");
    const { heapMemory, heapOffset } = await import("../lib/kernels/wasm-heap.ts");
    await tf.setBackend("wasm");
    const backend = tf.backend() as never;
    const threads = kernelThreads(heapMemory(backend))!;
    const calls = 5000;
    const [a, b] = [randomData(4 * calls), randomData(4 * calls)];
    const [ta, tb, out] = [tf.tensor(a), tf.tensor(b), tf.zeros([4 * calls])];
    const [A, B, OUT] = [ta, tb, out].map((t) => heapOffset(backend, t));
    threads.run(
      Array.from({ length: calls }, (_, i): [string, ...number[]] => [
        "addRows",
        A + 16 * i,
        B + 16 * i,
        OUT + 16 * i,
        1,
        4,
        0,
      ]),
    );
    expect(Array.from(out.dataSync())).toEqual(Array.from(a, (x, i) => Math.fround(x + b[i])));
    tf.dispose([ta, tb, out]);
    await tf.setBackend("cpu");
  });

  it("a kernel call that fails on the threads throws, and the next job runs normally", async () => {
    const { kernelThreads } = await import("../lib/kernels/threads.ts");
    const { heapMemory } = await import("../lib/kernels/wasm-heap.ts");
    await tf.setBackend("wasm");
    const threads = kernelThreads(heapMemory(tf.backend() as never))!;
    const outside = 0xfffff000; // far past the heap: every call traps, on whichever thread takes it
    const bad = Array.from({ length: 64 }, (): [string, ...number[]] => [
      "addRows",
      outside,
      outside,
      outside,
      1,
      1024,
      0,
    ]);
    expect(() => threads.run(bad)).toThrow(/memory access out of bounds|failed on a worker thread/);
    const x = tf.tensor(randomData(300 * 256), [300, 256]);
    const doubled = tf.add(x, x); // big enough to be shared out
    expect(Array.from(doubled.dataSync())).toEqual(Array.from(x.dataSync(), (v) => v + v));
    tf.dispose([x, doubled]);
    await tf.setBackend("cpu");
  });
});

describe("fused layers called outside tf.tidy", () => {
  it("LayerNorm.forward leaves only its output behind, and gradients still flow", async () => {
    const { LayerNorm, initBackend: init, tf: tfjs } = await import("gpt-course");
    await init("wasm");
    const norm = new LayerNorm(8);
    const x = tfjs.randomNormal([2, 3, 8], 0, 1, "float32", 1);
    const before = tfjs.memory().numTensors;
    const y = norm.forward(x);
    expect(tfjs.memory().numTensors).toBe(before + 1);
    const grad = tfjs.grad((input: import("gpt-course").tf.Tensor) => norm.forward(input).square().sum())(x);
    expect(Number.isFinite(grad.sum().dataSync()[0])).toBe(true);
    tfjs.dispose([x, y, grad]);
    norm.dispose();
  });
});
