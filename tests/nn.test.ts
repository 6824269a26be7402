/**
 * Building blocks (lib/nn) against the independent float64 reference in tests/reference/float64.ts.
 *
 * Relative error everywhere: max |lib − reference| / max(1, max |reference|) (see reference/helpers.ts),
 * required < 1e-4. Every parameter is randomised first (LayerNorm γ ≠ 1, biases ≠ 0), so a wrong mapping of
 * weights to maths cannot hide behind lib's initialisation. The numeric comparisons run on both the "wasm"
 * backend (lib's custom matmul path) and plain "cpu".
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  causalMask,
  DecoderBlock,
  Dropout,
  Embedding,
  EncoderBlock,
  gelu,
  geluTanh,
  initBackend,
  LayerNorm,
  Linear,
  MASKED_SCORE,
  MLP,
  CrossAttention,
  MultiHeadAttention,
  type MultiHeadAttentionConfig,
  Random,
  scaledDotProductAttention,
  tf,
  TransformerBlock,
  type BlockConfig,
} from "gpt-course";
import * as ref from "./reference/float64.js";
import {
  expectClose,
  flatten,
  maxAbsDiff,
  nested,
  randomizeParameters,
  randomTensor,
  readParams,
  relError,
  Rng,
  values,
} from "./reference/helpers.js";

const TOL = 1e-4;

function blockConfig(overrides: Partial<BlockConfig> = {}): BlockConfig {
  return {
    embeddingDim: 12,
    numHeads: 3,
    dropout: 0,
    bias: true,
    layerNormEpsilon: 1e-5,
    activation: "gelu_tanh",
    preNorm: true,
    initStd: 0.02,
    residualInitStd: 0.01,
    ...overrides,
  };
}

function attentionConfig(overrides: Partial<MultiHeadAttentionConfig> = {}): MultiHeadAttentionConfig {
  return {
    embeddingDim: 12,
    numHeads: 3,
    dropout: 0,
    bias: true,
    causal: false,
    initStd: 0.02,
    residualInitStd: 0.01,
    ...overrides,
  };
}

type M3 = ref.Matrix[];
type M4 = ref.Matrix[][];

// ---------------------------------------------------------------------------------------------------------
// The reference itself
// ---------------------------------------------------------------------------------------------------------

describe("float64 reference (sanity of the yardstick)", () => {
  it("erf matches published values to 1e-14", () => {
    const known: Array<[number, number]> = [
      [0, 0],
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [1.5, 0.9661051464753108],
      [2, 0.9953222650189527],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
    ];
    for (const [x, expected] of known) {
      expect(Math.abs(ref.erf(x) - expected), `erf(${x})`).toBeLessThan(1e-14);
      expect(Math.abs(ref.erf(-x) + expected), `erf(${-x})`).toBeLessThan(1e-14);
    }
    expect(ref.erf(7)).toBe(1);
  });

  it("GELU values: Φ(1) = 0.841344746…, exact vs tanh approximation differ by < 1e-3 but not 0", () => {
    expect(ref.geluExact(1)).toBeCloseTo(0.8413447460685429, 14);
    expect(ref.geluExact(-1)).toBeCloseTo(-0.15865525393145707, 14);
    let maxDiff = 0;
    for (let x = -6; x <= 6; x += 0.01) maxDiff = Math.max(maxDiff, Math.abs(ref.geluExact(x) - ref.geluTanh(x)));
    expect(maxDiff).toBeGreaterThan(1e-4);
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it("matmul, softmax and layer norm on hand-computed examples", () => {
    expect(
      ref.matmul(
        [
          [1, 2],
          [3, 4],
        ],
        [
          [5, 6],
          [7, 8],
        ],
      ),
    ).toEqual([
      [19, 22],
      [43, 50],
    ]);
    const s = ref.softmax([1, 2, 3]);
    const e = [Math.exp(-2), Math.exp(-1), 1];
    const z = e[0] + e[1] + e[2];
    s.forEach((p, i) => expect(p).toBeCloseTo(e[i] / z, 15));
    expect(ref.softmax([0, -Infinity])).toEqual([1, 0]);
    // [1, 2, 3]: mean 2, biased variance 2/3.
    const y = ref.layerNorm([[1, 2, 3]], [1, 1, 1], [0, 0, 0], 0)[0];
    const inv = 1 / Math.sqrt(2 / 3);
    expect(y[0]).toBeCloseTo(-inv, 14);
    expect(y[1]).toBeCloseTo(0, 14);
    expect(y[2]).toBeCloseTo(inv, 14);
  });

  it("attention with one allowed key copies that key's value", () => {
    const { output, weights } = ref.attention(
      [[1, 0]],
      [
        [5, 5],
        [0, 1],
      ],
      [
        [10, 20],
        [30, 40],
      ],
      {
        allowed: (_i, j) => j === 1,
      },
    );
    expect(weights).toEqual([[0, 1]]);
    expect(output).toEqual([[30, 40]]);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Numerics vs the reference, on both backends
// ---------------------------------------------------------------------------------------------------------

describe.each(["wasm", "cpu"] as const)("numerics vs float64 reference on %s", (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
    expect(tf.getBackend()).toBe(backend);
  });

  it("Linear: x·W + b with W stored (in, out), leading axes preserved", () => {
    const rng = new Rng(1);
    const layer = new Linear(5, 7, { seed: 3 });
    randomizeParameters(layer, 2);
    const x = randomTensor([2, 3, 5], rng);
    const y = layer.forward(x);
    expect(y.shape).toEqual([2, 3, 7]);
    const params = readParams(layer);
    expectClose(
      y,
      (nested(x) as M3).map((m) => ref.linear(m, params, "")),
      TOL,
    );
    tf.dispose([x, y]);
    layer.dispose();
  });

  it("LayerNorm: biased variance and ε (small-variance input, so ε matters), random γ and β", () => {
    const rng = new Rng(2);
    for (const eps of [1e-5, 1e-2]) {
      const norm = new LayerNorm(8, eps);
      randomizeParameters(norm, 3);
      // variance ~1e-3: ε = 1e-2 changes the result by a factor ~3, ε = 1e-5 by ~0.5 %.
      const x = randomTensor([3, 4, 8], rng, 0.03, 0.7);
      const y = norm.forward(x);
      const params = readParams(norm);
      const gamma = ref.vectorParam(params, "weight");
      const beta = ref.vectorParam(params, "bias");
      expectClose(
        y,
        (nested(x) as M3).map((m) => ref.layerNorm(m, gamma, beta, eps)),
        TOL,
        `eps=${eps}`,
      );
      // The unbiased variance (divide by C − 1) or a missing ε would be different functions: the test can tell.
      const unbiased = (nested(x) as M3).map((m) =>
        m.map((row) => {
          const mean = row.reduce((a, b) => a + b, 0) / 8;
          const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 7;
          return row.map((v, j) => ((v - mean) / Math.sqrt(variance + eps)) * gamma[j] + beta[j]);
        }),
      );
      const noEps = (nested(x) as M3).map((m) => ref.layerNorm(m, gamma, beta, 0));
      expect(relError(nested(y), noEps)).toBeGreaterThan(1e-3);
      expect(relError(nested(y), unbiased)).toBeGreaterThan(1e-3);
      tf.dispose([x, y]);
      norm.dispose();
    }
  });

  it("GELU exact and tanh approximation on [-6, 6]", () => {
    const xs = Array.from({ length: 241 }, (_, i) => -6 + i * 0.05);
    const x = tf.tensor1d(xs);
    const exact = gelu(x);
    const approx = geluTanh(x);
    expectClose(exact, xs.map(ref.geluExact), 1e-5, "gelu");
    expectClose(approx, xs.map(ref.geluTanh), 1e-5, "geluTanh");
    // Absolute too: float32 (and tf.erf's 1.5e-7 approximation) allow ~6e-7 here; a wrong constant (e.g.
    // 0.0447 for 0.044715) is off by ~1e-5.
    expect(maxAbsDiff(nested(exact), xs.map(ref.geluExact))).toBeLessThan(2e-6);
    expect(maxAbsDiff(nested(approx), xs.map(ref.geluTanh))).toBeLessThan(2e-6);
    // The two are distinguishable at this tolerance (a swap would fail).
    expect(maxAbsDiff(nested(exact), xs.map(ref.geluTanh))).toBeGreaterThan(1e-4);
    tf.dispose([x, exact, approx]);
  });

  it("softmax (tf.softmax as used by lib) is stable for large scores", () => {
    const rng = new Rng(4);
    const rows = [rng.normals(9, 3), rng.normals(9, 3).map((v) => v + 500), [1000, -1000, 0, 999, 5, 5, 5, 5, 5]];
    const x = tf.tensor2d(rows);
    const s = tf.softmax(x);
    // The reference gets the float32-rounded inputs (at 500 a float32 step is 3e-5).
    expectClose(s, ref.softmaxRows(nested(x) as ref.Matrix), 1e-6);
    expect(values(s).every(Number.isFinite)).toBe(true);
    tf.dispose([x, s]);
  });

  it("Embedding: rows of the table by id", () => {
    const table = new Embedding(6, 4, { seed: 1 });
    randomizeParameters(table, 5);
    const ids = tf.tensor2d(
      [
        [0, 5, 2],
        [2, 2, 1],
      ],
      [2, 3],
      "int32",
    );
    const out = table.forward(ids);
    const w = ref.matrixParam(readParams(table), "weight");
    expectClose(
      out,
      [
        [w[0], w[5], w[2]],
        [w[2], w[2], w[1]],
      ],
      1e-7,
    );
    tf.dispose([ids, out]);
    table.dispose();
  });

  describe("scaledDotProductAttention", () => {
    const B = 2,
      H = 2,
      T = 5,
      D = 4,
      DV = 3;
    // Padding: sequence 0 has 5 real keys, sequence 1 only the first 3.
    const keyMask = [
      [1, 1, 1, 1, 1],
      [1, 1, 1, 0, 0],
    ];

    function run(options: { causal?: boolean; padding?: boolean; Tq?: number }) {
      const rng = new Rng(10 + (options.causal ? 1 : 0) + (options.padding ? 2 : 0));
      const Tq = options.Tq ?? T;
      const q = randomTensor([B, H, Tq, D], rng, 1.5);
      const k = randomTensor([B, H, T, D], rng, 1.5);
      const v = randomTensor([B, H, T, DV], rng);
      const mask = options.padding ? tf.tensor(keyMask, [B, 1, 1, T], "float32") : undefined;
      const { output, weights } = scaledDotProductAttention(q, k, v, { causal: options.causal, mask });
      const [qa, ka, va] = [nested(q) as M4, nested(k) as M4, nested(v) as M4];
      const expectedOut: M4 = [];
      const expectedW: M4 = [];
      for (let b = 0; b < B; b++) {
        expectedOut.push([]);
        expectedW.push([]);
        for (let h = 0; h < H; h++) {
          const r = ref.attention(qa[b][h], ka[b][h], va[b][h], {
            causal: options.causal,
            allowed: options.padding ? ref.keyPaddingAllowed(keyMask[b]) : undefined,
          });
          expectedOut[b].push(r.output);
          expectedW[b].push(r.weights);
        }
      }
      expect(output.shape).toEqual([B, H, Tq, DV]);
      expect(weights.shape).toEqual([B, H, Tq, T]);
      expectClose(output, expectedOut, TOL, "output");
      expectClose(weights, expectedW, TOL, "weights");
      const w = nested(weights) as M4;
      tf.dispose([q, k, v, output, weights, ...(mask ? [mask] : [])]);
      return { w, expectedW };
    }

    function expectRowsSumToOne(w: M4) {
      for (const perHead of w)
        for (const m of perHead)
          for (const row of m) expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-6);
    }

    /** Weights where the reference has exactly 0 (masked) are exactly 0 in lib too. */
    function expectMaskedExactlyZero(w: M4, expectedW: M4) {
      let masked = 0;
      expectedW.forEach((perHead, b) =>
        perHead.forEach((m, h) =>
          m.forEach((row, i) =>
            row.forEach((value, j) => {
              if (value === 0) {
                masked++;
                expect(w[b][h][i][j], `weight [${b},${h},${i},${j}]`).toBe(0);
              }
            }),
          ),
        ),
      );
      return masked;
    }

    it("no mask", () => {
      const { w } = run({});
      expectRowsSumToOne(w);
      expect(w.flat(3).every((p) => p > 0)).toBe(true);
    });

    it("causal mask: future weights exactly 0, rows sum to 1", () => {
      const { w, expectedW } = run({ causal: true });
      expectRowsSumToOne(w);
      expect(expectMaskedExactlyZero(w, expectedW)).toBe(B * H * ((T * (T - 1)) / 2));
    });

    it("padding mask (B, 1, 1, Tk): padded keys get exactly 0", () => {
      const { w, expectedW } = run({ padding: true });
      expectRowsSumToOne(w);
      expect(expectMaskedExactlyZero(w, expectedW)).toBe(H * T * 2);
    });

    it("causal and padding masks together", () => {
      const { w, expectedW } = run({ causal: true, padding: true });
      expectRowsSumToOne(w);
      expect(expectMaskedExactlyZero(w, expectedW)).toBeGreaterThan(B * H * ((T * (T - 1)) / 2));
    });

    it("causal with cached keys (Tq = 2 < Tk = 5): the queries are the last two positions", () => {
      const { w, expectedW } = run({ causal: true, Tq: 2 });
      expectRowsSumToOne(w);
      // Query 0 is position 3: it sees keys 0..3; query 1 is position 4: it sees all.
      expect(expectMaskedExactlyZero(w, expectedW)).toBe(B * H);
      for (const perHead of w) for (const m of perHead) expect(m[0][4]).toBe(0);
    });

    it("causalMask(2, 5) and causalMask(4, 4)", () => {
      const m = causalMask(2, 5);
      expect(m.shape).toEqual([2, 5]);
      expect(m.dtype).toBe("float32");
      expect(m.arraySync()).toEqual([
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
      ]);
      const square = causalMask(4, 4);
      expect(square.arraySync()).toEqual([
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 1, 1, 1],
      ]);
      tf.dispose([m, square]);
    });

    it("a fully masked row stays finite (MASKED_SCORE is finite)", () => {
      expect(Number.isFinite(MASKED_SCORE)).toBe(true);
      const rng = new Rng(12);
      const q = randomTensor([1, 1, 2, 4], rng);
      const k = randomTensor([1, 1, 3, 4], rng);
      const v = randomTensor([1, 1, 3, 2], rng);
      const mask = tf.tensor([0, 0, 0], [1, 1, 1, 3]);
      const { output, weights } = scaledDotProductAttention(q, k, v, { mask });
      expect(values(output).every(Number.isFinite)).toBe(true);
      expect(values(weights).every(Number.isFinite)).toBe(true);
      tf.dispose([q, k, v, mask, output, weights]);
    });
  });

  describe("MultiHeadAttention", () => {
    const B = 2,
      T = 5,
      C = 12,
      NH = 3;

    function selfCase(causal: boolean, bias: boolean, padding: boolean) {
      const rng = new Rng(20 + Number(causal) + 2 * Number(bias) + 4 * Number(padding));
      const attn = new MultiHeadAttention(attentionConfig({ causal, bias }), new Random(5));
      randomizeParameters(attn, 21);
      const names = attn.namedParameters().map(([n]) => n);
      expect(names).toEqual(
        bias ? ["c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"] : ["c_attn.weight", "c_proj.weight"],
      );
      expect(attn.c_attn.weight.shape).toEqual([C, 3 * C]);
      const keyMask = [
        [1, 1, 1, 1, 1],
        [1, 1, 0, 1, 0],
      ];
      const mask = padding ? tf.tensor(keyMask, [B, 1, 1, T]) : undefined;
      const x = randomTensor([B, T, C], rng);
      const collected: tf.Tensor[] = [];
      const y = attn.forward(x, { mask, attentionWeights: collected });
      const params = readParams(attn);
      const expected = (nested(x) as M3).map((m, b) =>
        ref.selfAttention(m, params, "", {
          numHeads: NH,
          causal,
          allowed: padding ? ref.keyPaddingAllowed(keyMask[b]) : undefined,
        }),
      );
      expect(y.shape).toEqual([B, T, C]);
      expectClose(
        y,
        expected.map((r) => r.output),
        TOL,
        "output",
      );
      expect(collected).toHaveLength(1);
      expect(collected[0].shape).toEqual([B, NH, T, T]);
      expectClose(
        collected[0],
        expected.map((r) => r.weights),
        TOL,
        "weights",
      );
      tf.dispose([x, y, ...collected, ...(mask ? [mask] : [])]);
      attn.dispose();
    }

    it("self-attention, bidirectional, with biases", () => selfCase(false, true, false));
    it("self-attention, causal, with biases", () => selfCase(true, true, false));
    it("self-attention, causal, without biases", () => selfCase(true, false, false));
    it("self-attention with a padding mask", () => selfCase(false, true, true));

    it("cross-attention: q from x via q_attn [C, C], k and v from the context via c_attn [C, 2C]", () => {
      const rng = new Rng(30);
      const attn = new CrossAttention(attentionConfig(), new Random(6));
      randomizeParameters(attn, 31);
      expect(attn.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
        ["q_attn.weight", [C, C]],
        ["q_attn.bias", [C]],
        ["c_attn.weight", [C, 2 * C]],
        ["c_attn.bias", [2 * C]],
        ["c_proj.weight", [C, C]],
        ["c_proj.bias", [C]],
      ]);
      const Tk = 7;
      const x = randomTensor([B, T, C], rng);
      const context = randomTensor([B, Tk, C], rng);
      const keyMask = [
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 0, 0],
      ];
      const mask = tf.tensor(keyMask, [B, 1, 1, Tk]);
      const params = readParams(attn);
      for (const masked of [false, true]) {
        const collected: tf.Tensor[] = [];
        const y = attn.forward(x, context, { mask: masked ? mask : undefined, attentionWeights: collected });
        const ctx = nested(context) as M3;
        const expected = (nested(x) as M3).map((m, b) =>
          ref.crossAttention(m, ctx[b], params, "", {
            numHeads: NH,
            allowed: masked ? ref.keyPaddingAllowed(keyMask[b]) : undefined,
          }),
        );
        expect(y.shape).toEqual([B, T, C]);
        expectClose(
          y,
          expected.map((r) => r.output),
          TOL,
          `output (mask: ${masked})`,
        );
        expect(collected[0].shape).toEqual([B, NH, T, Tk]);
        expectClose(
          collected[0],
          expected.map((r) => r.weights),
          TOL,
          `weights (mask: ${masked})`,
        );
        tf.dispose([y, ...collected]);
      }
      tf.dispose([x, context, mask]);
      attn.dispose();
    });
  });

  it.each(["gelu_tanh", "gelu"] as const)("MLP with %s: c_proj(act(c_fc(x))), c_fc [C, 4C]", (activation) => {
    const rng = new Rng(40);
    const mlp = new MLP(blockConfig({ activation }), new Random(7));
    randomizeParameters(mlp, 41);
    expect(mlp.c_fc.weight.shape).toEqual([12, 48]);
    expect(mlp.c_proj.weight.shape).toEqual([48, 12]);
    const x = randomTensor([2, 4, 12], rng, 2);
    const y = mlp.forward(x);
    const params = readParams(mlp);
    expectClose(
      y,
      (nested(x) as M3).map((m) => ref.mlp(m, params, "", activation)),
      TOL,
    );
    tf.dispose([x, y]);
    mlp.dispose();
  });

  describe("TransformerBlock", () => {
    const cases = [
      { preNorm: true, causal: true, activation: "gelu_tanh" },
      { preNorm: false, causal: true, activation: "gelu_tanh" },
      { preNorm: true, causal: false, activation: "gelu" },
      { preNorm: false, causal: false, activation: "gelu" },
    ] as const;

    it.each(cases)("preNorm=$preNorm causal=$causal $activation", ({ preNorm, causal, activation }) => {
      const rng = new Rng(50);
      const blk = new TransformerBlock(
        { ...blockConfig({ preNorm, activation, layerNormEpsilon: 1e-3 }), causal, crossAttention: false },
        new Random(8),
      );
      randomizeParameters(blk, 51);
      const x = randomTensor([2, 6, 12], rng);
      const collected: tf.Tensor[] = [];
      const y = blk.forward(x, { attentionWeights: collected });
      const params = readParams(blk);
      const expected = (nested(x) as M3).map((m) =>
        ref.block(m, params, "", { numHeads: 3, eps: 1e-3, activation, preNorm, causal }),
      );
      expectClose(
        y,
        expected.map((r) => r.output),
        TOL,
      );
      expectClose(
        collected[0],
        expected.map((r) => r.selfWeights),
        TOL,
        "attention weights",
      );
      tf.dispose([x, y, ...collected]);
      blk.dispose();
    });

    it.each([true, false])("decoder block with cross-attention (preNorm=%s), padded context", (preNorm) => {
      const rng = new Rng(60);
      const blk = new DecoderBlock({ ...blockConfig({ preNorm }), crossAttention: true }, new Random(9));
      randomizeParameters(blk, 61);
      const names = blk.namedParameters().map(([n]) => n);
      expect(names).toContain("ln_cross_attn.weight");
      expect(names).toContain("crossattention.q_attn.weight");
      const x = randomTensor([2, 4, 12], rng);
      const context = randomTensor([2, 6, 12], rng);
      const keyMask = [
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0, 0],
      ];
      const crossMask = tf.tensor(keyMask, [2, 1, 1, 6]);
      const cross: tf.Tensor[] = [];
      const y = blk.forward(x, { encoderOutput: context, crossMask, crossAttentionWeights: cross });
      const params = readParams(blk);
      const ctx = nested(context) as M3;
      const expected = (nested(x) as M3).map((m, b) =>
        ref.block(m, params, "", {
          numHeads: 3,
          eps: 1e-5,
          activation: "gelu_tanh",
          preNorm,
          causal: true,
          context: ctx[b],
          crossAllowed: ref.keyPaddingAllowed(keyMask[b]),
        }),
      );
      expectClose(
        y,
        expected.map((r) => r.output),
        TOL,
      );
      expectClose(
        cross[0],
        expected.map((r) => r.crossWeights as ref.Matrix[]),
        TOL,
        "cross weights",
      );
      expect(() => blk.forward(x)).toThrow(/cross-attention needs `encoderOutput`/);
      tf.dispose([x, context, crossMask, y, ...cross]);
      blk.dispose();
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// Attention gradients: wasm (where lib may use its own kernels) vs cpu (TensorFlow.js's composed ops)
// ---------------------------------------------------------------------------------------------------------

describe("scaledDotProductAttention gradients agree between wasm and cpu", () => {
  const cases = [
    { name: "rank 4, causal, Tq = Tk", lead: [2, 3], Tq: 5, Tk: 5, causal: true },
    { name: "rank 4, bidirectional, Tq ≠ Tk, d_v ≠ d_k", lead: [2, 2], Tq: 3, Tk: 6, causal: false },
    { name: "rank 4, causal with cached keys (Tq = 2 < Tk = 6)", lead: [1, 2], Tq: 2, Tk: 6, causal: true },
    { name: "rank 3, causal", lead: [3], Tq: 4, Tk: 4, causal: true },
  ];

  it.each(cases)("$name (loss uses both the output and the weights)", async ({ lead, Tq, Tk, causal }) => {
    const rng = new Rng(90 + Tq * 7 + Tk);
    const D = 4,
      DV = 3;
    const data = {
      q: rng.normals(lead.reduce((a, b) => a * b, 1) * Tq * D, 1.5),
      k: rng.normals(lead.reduce((a, b) => a * b, 1) * Tk * D, 1.5),
      v: rng.normals(lead.reduce((a, b) => a * b, 1) * Tk * DV),
      r: rng.normals(lead.reduce((a, b) => a * b, 1) * Tq * DV),
      s: rng.normals(lead.reduce((a, b) => a * b, 1) * Tq * Tk),
    };
    const run = () =>
      tf.tidy(() => {
        const q = tf.tensor(data.q, [...lead, Tq, D]);
        const k = tf.tensor(data.k, [...lead, Tk, D]);
        const v = tf.tensor(data.v, [...lead, Tk, DV]);
        const r = tf.tensor(data.r, [...lead, Tq, DV]);
        const s = tf.tensor(data.s, [...lead, Tq, Tk]);
        const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
          const { output, weights } = scaledDotProductAttention(a, b, c, { causal });
          return output.mul(r).sum().add(weights.mul(s).sum()) as tf.Scalar;
        };
        const { value, grads } = tf.valueAndGrads(f)([q, k, v]);
        const { output, weights } = scaledDotProductAttention(q, k, v, { causal });
        return {
          value: value.dataSync()[0],
          grads: grads.map((g) => nested(g)),
          output: nested(output),
          weights: nested(weights),
        };
      });
    await initBackend("cpu");
    const onCpu = run();
    await initBackend("wasm");
    const onWasm = run();
    expectClose(onWasm.output, onCpu.output, 1e-5, "output");
    expectClose(onWasm.weights, onCpu.weights, 1e-5, "weights");
    expect(Math.abs(onWasm.value - onCpu.value)).toBeLessThan(1e-4 * Math.max(1, Math.abs(onCpu.value)));
    ["dq", "dk", "dv"].forEach((name, i) => expectClose(onWasm.grads[i], onCpu.grads[i], 1e-4, name));
    // The gradients are not trivially zero (the comparison could fail).
    for (const g of onCpu.grads) expect(Math.max(...flatten(g).map(Math.abs))).toBeGreaterThan(1e-2);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------------------------------------

describe("behaviour", () => {
  beforeAll(async () => {
    await initBackend();
  });

  /** Output of `blk` for x and for x with position `t` changed. */
  function perturbAt(blk: TransformerBlock, t: number): { before: ref.Matrix[]; after: ref.Matrix[] } {
    const rng = new Rng(70 + t);
    const data = rng.normals(2 * 6 * 12);
    const changed = data.slice();
    for (let c = 0; c < 12; c++) changed[(0 * 6 + t) * 12 + c] += 1 + rng.normal(); // sequence 0, position t
    const [x1, x2] = [tf.tensor(data, [2, 6, 12]), tf.tensor(changed, [2, 6, 12])];
    const [y1, y2] = [blk.forward(x1), blk.forward(x2)];
    const result = { before: nested(y1) as M3, after: nested(y2) as M3 };
    tf.dispose([x1, x2, y1, y2]);
    return result;
  }

  it("EncoderBlock is bidirectional: changing the last token changes every earlier output", () => {
    const blk = new EncoderBlock(blockConfig(), new Random(1));
    randomizeParameters(blk, 80);
    const { before, after } = perturbAt(blk, 5);
    for (let t = 0; t < 6; t++) expect(maxAbsDiff(after[0][t], before[0][t]), `position ${t}`).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(after[1], before[1])).toBe(0); // the other sequence is untouched
    blk.dispose();
  });

  it("DecoderBlock is causal: changing token t leaves positions < t unchanged and changes t onwards", () => {
    const blk = new DecoderBlock(blockConfig(), new Random(2));
    randomizeParameters(blk, 81);
    for (const t of [1, 3, 5]) {
      const { before, after } = perturbAt(blk, t);
      for (let s = 0; s < t; s++)
        expect(maxAbsDiff(after[0][s], before[0][s]), `t=${t}, position ${s}`).toBeLessThan(1e-6);
      for (let s = t; s < 6; s++)
        expect(maxAbsDiff(after[0][s], before[0][s]), `t=${t}, position ${s}`).toBeGreaterThan(1e-3);
    }
    blk.dispose();
  });

  it("numHeads not dividing embeddingDim is a clear error; so is a non-positive numHeads", () => {
    expect(() => new MultiHeadAttention(attentionConfig({ embeddingDim: 10, numHeads: 3 }), new Random(1))).toThrow(
      /embeddingDim \(10\) must be divisible by numHeads \(3\)/,
    );
    expect(
      () =>
        new TransformerBlock(
          { ...blockConfig({ embeddingDim: 12, numHeads: 5 }), causal: true, crossAttention: false },
          new Random(1),
        ),
    ).toThrow(/embeddingDim \(12\) must be divisible by numHeads \(5\)/);
    expect(() => new MultiHeadAttention(attentionConfig({ numHeads: 0 }), new Random(1))).toThrow(
      /numHeads must be a positive integer/,
    );
  });

  it("Dropout: identity in eval; in training zeroes about `rate` and scales survivors by 1/(1 − rate); seeded", () => {
    expect(() => new Dropout(1, new Random(1))).toThrow(/rate must be in \[0, 1\)/);
    expect(() => new Dropout(-0.1, new Random(1))).toThrow(/rate must be in \[0, 1\)/);
    const x = tf.ones([100, 100]);
    const drop = new Dropout(0.25, new Random(3));
    const evalOut = drop.forward(x);
    expect(values(evalOut).every((v) => v === 1)).toBe(true);
    drop.train();
    const trainOut = drop.forward(x);
    const out = values(trainOut);
    const zeros = out.filter((v) => v === 0).length / out.length;
    expect(zeros).toBeGreaterThan(0.22);
    expect(zeros).toBeLessThan(0.28);
    for (const v of out) if (v !== 0) expect(Math.abs(v - 1 / 0.75)).toBeLessThan(1e-6);
    const replay = new Dropout(0.25, new Random(3)).train().forward(x);
    expect(values(replay)).toEqual(out);
    const next = drop.forward(x); // a new mask each call
    expect(values(next)).not.toEqual(out);
    tf.dispose([x, evalOut, trainOut, replay, next]);
  });

  it("layers leave no tensors behind", () => {
    const blk = new DecoderBlock({ ...blockConfig(), crossAttention: true }, new Random(4));
    const x = tf.randomNormal([2, 4, 12]);
    const context = tf.randomNormal([2, 5, 12]);
    const before = tf.memory().numTensors;
    const y = blk.forward(x, { encoderOutput: context });
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, context]);
    blk.dispose();
  });
});
