/**
 * The whole GPT: forward pass vs the float64 reference (tests/reference/float64.ts), causality, the loss
 * at initialisation, determinism, the KV cache, gradients vs finite differences (cpu and wasm), tensor
 * leaks, input errors, and a tiny model overfitting a tiny text.
 *
 * Relative error: max |lib − reference| / max(1, max |reference|) (tests/reference/helpers.ts).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { crossEntropy, DecoderBlock, GPT, type GPTConfig, gptConfig, initBackend, Random, tf } from "gpt-course";
import * as ref from "./reference/float64.js";
import {
  expectClose,
  finiteDifferences,
  maxAbsDiff,
  nested,
  randomIds,
  randomizeParameters,
  randomTensor,
  readParams,
  relError,
  Rng,
  topIndices,
  values,
} from "./reference/helpers.js";

/** A GPT small enough for the float64 reference: V 13, T 8, 2 layers, 2 heads, C 8. */
const small: Partial<GPTConfig> = { vocabSize: 13, contextLength: 8, numLayers: 2, numHeads: 2, embeddingDim: 8 };

function referenceConfig(config: GPTConfig): ref.GPTReferenceConfig {
  return {
    numLayers: config.numLayers,
    numHeads: config.numHeads,
    eps: config.layerNormEpsilon,
    activation: config.activation,
    preNorm: config.preNorm,
    tieWeights: config.tieWeights,
  };
}

function idsTensor(ids: number[][]): tf.Tensor2D {
  return tf.tensor2d(ids, [ids.length, ids[0].length], "int32");
}

beforeAll(async () => {
  await initBackend();
});

describe("forward vs float64 reference (all parameters randomised)", () => {
  const cases: Array<{ name: string; config: Partial<GPTConfig> }> = [
    { name: "tied head, pre-LN, gelu_tanh, biases", config: { tieWeights: true } },
    { name: "untied head (lm_head [C, V]), pre-LN", config: { tieWeights: false } },
    {
      name: "untied, post-LN, exact gelu, no biases, ε = 1e-3",
      config: { tieWeights: false, preNorm: false, activation: "gelu", bias: false, layerNormEpsilon: 1e-3 },
    },
    { name: "tied, 3 layers, 4 heads", config: { tieWeights: true, numLayers: 3, numHeads: 4 } },
  ];

  it.each(cases)("$name", ({ config }) => {
    const model = new GPT({ ...small, ...config, seed: 3 });
    randomizeParameters(model, 100);
    const names = model.namedParameters().map(([n]) => n);
    expect(names.includes("lm_head.weight")).toBe(config.tieWeights === false);
    if (config.tieWeights === false) expect(model.lm_head?.weight.shape).toEqual([8, 13]);
    expect(names.includes("h.0.attn.c_attn.bias")).toBe(config.bias !== false);
    const ids = randomIds(2, 8, 13, new Rng(101));
    const x = idsTensor(ids);
    const logits = model.forward(x);
    expect(logits.shape).toEqual([2, 8, 13]);
    const expected = ref.gptForward(ids, readParams(model), referenceConfig(model.config));
    expectClose(logits, expected, 1e-4, "logits");
    // Shorter input than the context: positions 0..T-1 are used.
    const short = idsTensor(ids.map((row) => row.slice(0, 3)));
    const shortLogits = model.forward(short);
    expectClose(
      shortLogits,
      expected.map((m) => m.slice(0, 3)),
      1e-4,
      "logits of a 3-token prefix",
    );
    tf.dispose([x, logits, short, shortLogits]);
    model.dispose();
  });

  it("attention weights of every block are collected with shape (B, nh, T, T)", () => {
    const model = new GPT({ ...small, seed: 4 });
    const x = idsTensor(randomIds(2, 5, 13, new Rng(5)));
    const weights: tf.Tensor[] = [];
    const logits = model.forward(x, { attentionWeights: weights });
    expect(weights.map((w) => w.shape)).toEqual([
      [2, 2, 5, 5],
      [2, 2, 5, 5],
    ]);
    for (const w of weights) {
      const rows = nested(w) as number[][][][];
      for (const perHead of rows)
        for (const m of perHead) m.forEach((row, i) => row.forEach((p, j) => j > i && expect(p).toBe(0)));
    }
    tf.dispose([x, logits, ...weights]);
    model.dispose();
  });
});

describe("model behaviour", () => {
  it("is causal: changing token t never changes logits at positions < t, and does change position t", () => {
    const model = new GPT({ ...small, seed: 5 });
    randomizeParameters(model, 110);
    const ids = randomIds(1, 8, 13, new Rng(111));
    const x = idsTensor(ids);
    const base = nested(model.forward(x).squeeze([0]) as tf.Tensor) as number[][];
    for (let t = 0; t < 8; t++) {
      const changed = ids.map((row) => row.slice());
      changed[0][t] = (changed[0][t] + 1 + (t % 5)) % 13;
      const y = tf.tidy(() => model.forward(idsTensor(changed)).squeeze([0]));
      const out = nested(y) as number[][];
      for (let s = 0; s < t; s++) expect(maxAbsDiff(out[s], base[s]), `t=${t}, position ${s}`).toBeLessThan(1e-6);
      expect(maxAbsDiff(out[t], base[t]), `t=${t}, position ${t}`).toBeGreaterThan(1e-3);
      y.dispose();
    }
    tf.dispose(x);
    model.dispose();
  });

  it("loss at initialisation ≈ ln(vocabSize) for the tiny preset (random targets)", () => {
    const model = new GPT({ vocabSize: 65, contextLength: 16, numLayers: 2, numHeads: 2, embeddingDim: 16 });
    const rng = new Rng(120);
    const x = idsTensor(randomIds(8, 16, 65, rng));
    const y = idsTensor(randomIds(8, 16, 65, rng));
    const loss = tf.tidy(() => crossEntropy(model.forward(x), y));
    const value = loss.dataSync()[0];
    expect(Math.abs(value - Math.log(65)), `loss ${value} vs ln 65 = ${Math.log(65)}`).toBeLessThan(0.1);
    tf.dispose([x, y, loss]);
    model.dispose();
  });

  it("is deterministic: same seed → identical parameters, different seed → different", () => {
    const a = new GPT({ ...small, seed: 42 });
    const b = new GPT({ ...small, seed: 42 });
    const c = new GPT({ ...small, seed: 43 });
    const pa = readParams(a);
    const pb = readParams(b);
    const pc = readParams(c);
    expect(Object.keys(pa)).toEqual(Object.keys(pb));
    for (const name of Object.keys(pa)) expect(Array.from(pb[name].data), name).toEqual(Array.from(pa[name].data));
    // Every randomly initialised matrix differs with another seed (LayerNorm and biases start at 1 / 0).
    const randomNames = Object.keys(pa).filter((n) => pa[n].shape.length === 2);
    expect(randomNames.length).toBeGreaterThanOrEqual(2 + 4 * 2);
    for (const name of randomNames) expect(Array.from(pc[name].data), name).not.toEqual(Array.from(pa[name].data));
    // And the initial values have the configured scale: wte ~ N(0, 0.02²).
    const wte = Array.from(pa["wte.weight"].data);
    const std = Math.sqrt(wte.reduce((s, v) => s + v * v, 0) / wte.length);
    expect(std).toBeGreaterThan(0.015);
    expect(std).toBeLessThan(0.025);
    // Same ids, same logits.
    const x = idsTensor([[1, 2, 3]]);
    const [la, lb] = [a.forward(x), b.forward(x)];
    expect(values(la)).toEqual(values(lb));
    tf.dispose([x, la, lb]);
    [a, b, c].forEach((m) => m.dispose());
  });
});

describe("KV cache", () => {
  it("token-by-token with the cache equals one full forward (within 1e-5)", () => {
    const model = new GPT({ ...small, seed: 6 });
    randomizeParameters(model, 130);
    const ids = randomIds(2, 8, 13, new Rng(131));
    const x = idsTensor(ids);
    const full = nested(model.forward(x)) as number[][][];
    const cache = model.createCache();
    expect(cache).toHaveLength(2);
    const steps: number[][][] = [[], []];
    for (let t = 0; t < 8; t++) {
      const step = idsTensor(ids.map((row) => [row[t]]));
      const logits = model.forward(step, { cache });
      expect(logits.shape).toEqual([2, 1, 13]);
      const out = nested(logits) as number[][][];
      steps[0].push(out[0][0]);
      steps[1].push(out[1][0]);
      for (const c of cache) expect(c.length).toBe(t + 1);
      expect(cache[0].keys?.shape).toEqual([2, 2, t + 1, 4]);
      tf.dispose([step, logits]);
    }
    expect(relError(steps, full)).toBeLessThan(1e-5);
    cache.forEach((c) => c.dispose());
    tf.dispose(x);
    model.dispose();
  });

  it("a prompt of several tokens, then single tokens, equals the full forward", () => {
    const model = new GPT({ ...small, seed: 7, tieWeights: false });
    randomizeParameters(model, 140);
    const ids = randomIds(1, 7, 13, new Rng(141));
    const x = idsTensor(ids);
    const full = nested(model.forward(x)) as number[][][];
    const cache = model.createCache();
    const prompt = idsTensor([ids[0].slice(0, 4)]);
    const first = nested(model.forward(prompt, { cache })) as number[][][];
    const rest: number[][] = [];
    for (let t = 4; t < 7; t++) {
      const step = idsTensor([[ids[0][t]]]);
      const logits = model.forward(step, { cache });
      rest.push((nested(logits) as number[][][])[0][0]);
      tf.dispose([step, logits]);
    }
    expect(relError([[...first[0], ...rest]], full)).toBeLessThan(1e-5);
    cache.forEach((c) => c.dispose());
    tf.dispose([x, prompt]);
    model.dispose();
  });

  it("disposing the cache frees its tensors (2 per layer); a cached generation loop leaks nothing", () => {
    const model = new GPT({ ...small, seed: 8 });
    const start = tf.memory().numTensors;
    const cache = model.createCache();
    let token = 3;
    const generated: number[] = [];
    for (let t = 0; t < 8; t++) {
      const step = idsTensor([[token]]);
      const logits = model.forward(step, { cache });
      const next = tf.tidy(() => logits.squeeze().argMax());
      token = next.dataSync()[0];
      generated.push(token);
      tf.dispose([step, logits, next]);
    }
    expect(generated.every((id) => Number.isInteger(id) && id >= 0 && id < 13)).toBe(true);
    expect(tf.memory().numTensors).toBe(start + 2 * model.config.numLayers);
    cache.forEach((c) => c.dispose());
    expect(cache.every((c) => c.length === 0 && c.keys === undefined && c.values === undefined)).toBe(true);
    expect(tf.memory().numTensors).toBe(start);
    model.dispose();
  });
});

describe("gradients", () => {
  /**
   * Compares tf.variableGrads with central differences (step 1e-2, float32) on the largest-gradient
   * components of each variable: |analytic − numeric| ≤ 5e-3·|analytic| + 2e-4. Observed agreement is
   * ~1e-4 relative; a gradient off by 1 % fails.
   */
  function gradientCheck(variables: Array<[string, tf.Variable]>, loss: () => tf.Scalar, perVariable = 3): void {
    const list = variables.map(([, v]) => v);
    const { value, grads } = tf.variableGrads(loss, list);
    value.dispose();
    const f = () => tf.tidy(() => loss().dataSync()[0]);
    for (const [name, variable] of variables) {
      const analytic = grads[variable.name].dataSync().slice();
      const indices = topIndices(analytic, perVariable);
      expect(
        Math.abs(analytic[indices[0]]),
        `${name}: gradient is not ~0 (the check must be able to fail)`,
      ).toBeGreaterThan(1e-2);
      const numeric = finiteDifferences(variable, indices, f, 1e-2);
      indices.forEach((index, k) => {
        const a = analytic[index];
        const n = numeric[k];
        expect(Math.abs(a - n), `${name}[${index}]: analytic ${a} vs finite difference ${n}`).toBeLessThanOrEqual(
          5e-3 * Math.abs(a) + 2e-4,
        );
      });
    }
    tf.dispose(Object.values(grads));
  }

  describe.each(["cpu", "wasm"] as const)("on %s", (backend) => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    it("a decoder block: analytic gradients match central differences", () => {
      const blk = new DecoderBlock(
        {
          embeddingDim: 8,
          numHeads: 2,
          dropout: 0,
          bias: true,
          layerNormEpsilon: 1e-5,
          activation: "gelu_tanh",
          preNorm: true,
          initStd: 0.02,
          residualInitStd: 0.02,
        },
        new Random(1),
      );
      randomizeParameters(blk, 150);
      const rng = new Rng(151);
      const x = randomTensor([1, 4, 8], rng);
      const r = randomTensor([1, 4, 8], rng);
      const params = new Map(blk.namedParameters());
      const pick = [
        "attn.c_attn.weight",
        "attn.c_attn.bias",
        "attn.c_proj.weight",
        "mlp.c_fc.weight",
        "mlp.c_proj.weight",
        "ln_1.weight",
        "ln_2.bias",
      ];
      gradientCheck(
        pick.map((n) => [n, params.get(n) as tf.Variable]),
        () => tf.tidy(() => blk.forward(x).mul(r).sum() as tf.Scalar),
      );
      tf.dispose([x, r]);
      blk.dispose();
    });

    it.each([true, false])("a whole GPT with cross-entropy (tied head: %s)", (tieWeights) => {
      const model = new GPT({ ...small, tieWeights, seed: 9 });
      randomizeParameters(model, 160);
      const rng = new Rng(161);
      const x = idsTensor(randomIds(2, 6, 13, rng));
      const y = idsTensor(randomIds(2, 6, 13, rng));
      const params = new Map(model.namedParameters());
      const pick = ["wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.1.mlp.c_fc.weight", "ln_f.weight"];
      if (!tieWeights) pick.push("lm_head.weight");
      gradientCheck(
        pick.map((n) => [n, params.get(n) as tf.Variable]),
        () => tf.tidy(() => crossEntropy(model.forward(x), y)),
      );
      tf.dispose([x, y]);
      model.dispose();
    });

    it("forward + backward leaves no tensors behind", () => {
      const model = new GPT({ ...small, seed: 10, tieWeights: false });
      const x = idsTensor([
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ]);
      const y = idsTensor([
        [2, 3, 4, 5],
        [6, 7, 8, 9],
      ]);
      const start = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(x), y));
      expect(Object.keys(grads)).toHaveLength(model.parameters().length);
      for (const variable of model.parameters()) expect(grads[variable.name].shape).toEqual(variable.shape);
      value.dispose();
      tf.dispose(Object.values(grads));
      expect(tf.memory().numTensors).toBe(start);
      tf.dispose([x, y]);
      model.dispose();
    });
  });
});

describe("input errors", () => {
  beforeAll(async () => {
    await initBackend();
  });

  it("reject bad ids with messages that say what is wrong", () => {
    const model = new GPT(gptConfig({ preset: "tiny" }));
    expect(model.config.vocabSize).toBe(65);
    const start = tf.memory().numTensors;
    const cases: Array<[tf.Tensor, RegExp]> = [
      [
        tf.tensor2d([[1, -1, 2]], [1, 3], "int32"),
        /token id -1 is out of range; ids must be in \[0, 64\] \(vocabSize 65\)/,
      ],
      [tf.tensor2d([[1, 65, 2]], [1, 3], "int32"), /token id 65 is out of range; ids must be in \[0, 64\]/],
      [tf.zeros([1, 17], "int32"), /sequence of 17 tokens is longer than the context length 16/],
      [tf.tensor2d([[1, 2]], [1, 2], "float32"), /ids must be int32 token ids, got float32/],
      [tf.tensor1d([1, 2, 3], "int32"), /ids must have shape \(batch, time\), got shape \[3\]/],
      [tf.zeros([1, 0], "int32"), /ids is empty/],
    ];
    for (const [ids, message] of cases) {
      expect(() => model.forward(ids)).toThrow(message);
      ids.dispose();
    }
    expect(tf.memory().numTensors, "a rejected call leaks nothing").toBe(start);
    model.dispose();
  });

  it("rejects packed documents of the wrong shape or type, and documents with a KV cache", () => {
    const model = new GPT(gptConfig({ preset: "tiny" }));
    const ids = tf.zeros([2, 4], "int32");
    const good = tf.zeros([2, 4], "int32");
    const start = tf.memory().numTensors;
    const wrongShape = tf.zeros([2, 3], "int32");
    const wrongType = tf.zeros([2, 4], "float32");
    expect(() => model.forward(ids, { documents: { documentIds: wrongShape, positions: good } })).toThrow(
      /documents.documentIds must be int32 of the ids' shape \[2,4\], got int32 \[2,3\]/,
    );
    expect(() => model.forward(ids, { documents: { documentIds: good, positions: wrongType } })).toThrow(
      /documents.positions must be int32/,
    );
    const cache = model.createCache();
    expect(() => model.forward(ids, { documents: { documentIds: good, positions: good }, cache })).toThrow(
      /packed documents are for training/,
    );
    tf.dispose([wrongShape, wrongType]);
    expect(tf.memory().numTensors, "a rejected call leaks nothing").toBe(start);
    tf.dispose([ids, good]);
    model.dispose();
  });

  it("rejects a sequence longer than the context when counting cached positions", () => {
    const model = new GPT(gptConfig({ preset: "tiny" }));
    const cache = model.createCache();
    const prompt = tf.zeros([1, 15], "int32");
    model.forward(prompt, { cache }).dispose();
    const two = tf.zeros([1, 2], "int32");
    expect(() => model.forward(two, { cache })).toThrow(
      /sequence of 17 tokens \(15 cached \+ 2 new\) is longer than the context length 16/,
    );
    expect(cache[0].length, "a rejected call does not grow the cache").toBe(15);
    const one = tf.zeros([1, 1], "int32");
    model.forward(one, { cache }).dispose(); // exactly 16: allowed
    expect(() => model.forward(one, { cache })).toThrow(/sequence of 17 tokens \(16 cached \+ 1 new\)/);
    cache.forEach((c) => c.dispose());
    tf.dispose([prompt, two, one]);
    model.dispose();
  });
});

describe("learning", () => {
  beforeAll(async () => {
    await initBackend();
  });

  it("a tiny GPT overfits a 60-character text to loss < 0.1 with Adam", () => {
    const text = "the cat sat on the mat. the dog sat on the log. a fat frog!!";
    expect(text.length).toBe(60);
    const chars = [...new Set(text)].sort();
    const ids = [...text].map((ch) => chars.indexOf(ch));
    const model = new GPT({
      vocabSize: chars.length,
      contextLength: 64,
      numLayers: 2,
      numHeads: 2,
      embeddingDim: 32,
      seed: 11,
    });
    const x = idsTensor([ids.slice(0, -1)]);
    const y = idsTensor([ids.slice(1)]);
    const optimizer = tf.train.adam(1e-2);
    let first = NaN;
    let loss = NaN;
    let steps = 0;
    let afterFirstStep = 0;
    for (; steps < 400; steps++) {
      const cost = optimizer.minimize(() => crossEntropy(model.forward(x), y), true) as tf.Scalar;
      loss = cost.dataSync()[0];
      cost.dispose();
      if (steps === 0) {
        first = loss;
        afterFirstStep = tf.memory().numTensors; // the optimizer's slots now exist
      }
      if (loss < 0.1) break;
    }
    expect(Math.abs(first - Math.log(chars.length)), "starts near ln V").toBeLessThan(0.2);
    expect(loss, `loss after ${steps + 1} steps`).toBeLessThan(0.1);
    expect(tf.memory().numTensors, "training steps leak no tensors").toBe(afterFirstStep);
    // It has memorised the text: the most likely next character is right at every position.
    const predicted = tf.tidy(() => model.forward(x).argMax(-1));
    expect(Array.from(predicted.dataSync())).toEqual(ids.slice(1));
    predicted.dispose();
    optimizer.dispose();
    tf.dispose([x, y]);
    model.dispose();
  });
});
