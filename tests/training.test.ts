import { beforeAll, describe, expect, it } from "vitest";
import {
  AdamW,
  clipByGlobalNorm,
  defaultDecays,
  GPT,
  initBackend,
  learningRateAt,
  TokenDataset,
  tf,
  Trainer,
} from "gpt-course";

beforeAll(async () => {
  await initBackend();
});

/** Plain-number AdamW, written from the paper's update rule, as the reference. */
function referenceAdamW(
  w: number[],
  grads: number[][],
  o: { lr: number; b1: number; b2: number; eps: number; wd: number },
): number[] {
  const m = w.map(() => 0);
  const v = w.map(() => 0);
  const p = [...w];
  grads.forEach((g, step) => {
    const t = step + 1;
    for (let i = 0; i < p.length; i++) {
      m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
      v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
      const mHat = m[i] / (1 - o.b1 ** t);
      const vHat = v[i] / (1 - o.b2 ** t);
      p[i] = p[i] - o.lr * o.wd * p[i] - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    }
  });
  return p;
}

describe("AdamW", () => {
  it("matches the reference update, with decay on matrices and none on vectors", () => {
    const options = { lr: 0.01, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.1 };
    const matrix = tf.variable(
      tf.tensor2d([
        [0.5, -1],
        [2, 0.1],
      ]),
    );
    const bias = tf.variable(tf.tensor1d([0.3, -0.7]));
    const optimizer = new AdamW(
      [
        ["h.0.mlp.c_fc.weight", matrix],
        ["h.0.mlp.c_fc.bias", bias],
      ],
      {
        learningRate: options.lr,
        beta1: options.b1,
        beta2: options.b2,
        epsilon: options.eps,
        weightDecay: options.wd,
      },
    );
    const gradients = [
      [
        [0.1, -0.2, 0.3, 0.05],
        [1, 2],
      ],
      [
        [-0.3, 0.1, 0.0, 0.4],
        [-0.5, 0.25],
      ],
      [
        [0.2, 0.2, -0.1, -0.2],
        [0.1, -0.1],
      ],
    ];
    for (const [gm, gb] of gradients) {
      const grads = { "h.0.mlp.c_fc.weight": tf.tensor2d(gm, [2, 2]), "h.0.mlp.c_fc.bias": tf.tensor1d(gb) };
      optimizer.applyGradients(grads);
      tf.dispose(Object.values(grads));
    }
    const expectedMatrix = referenceAdamW(
      [0.5, -1, 2, 0.1],
      gradients.map(([gm]) => gm),
      options,
    );
    const expectedBias = referenceAdamW(
      [0.3, -0.7],
      gradients.map(([, gb]) => gb),
      { ...options, wd: 0 },
    );
    Array.from(matrix.dataSync()).forEach((value, i) => expect(value).toBeCloseTo(expectedMatrix[i], 6));
    Array.from(bias.dataSync()).forEach((value, i) => expect(value).toBeCloseTo(expectedBias[i], 6));
    expect(optimizer.step).toBe(3);
    optimizer.dispose();
    tf.dispose([matrix, bias]);
  });

  it("decays weight matrices only: not biases, LayerNorm or embeddings", () => {
    const model = new GPT({ preset: "tiny" });
    const decayed = model
      .namedParameters()
      .filter(([name, v]) => defaultDecays(name, v))
      .map(([name]) => name);
    expect(decayed).toContain("h.0.attn.c_attn.weight");
    expect(decayed).toContain("h.1.mlp.c_proj.weight");
    expect(decayed.some((name) => /bias|ln_|wte|wpe/.test(name))).toBe(false);
    model.dispose();
  });

  it("frees everything it allocates when disposed", () => {
    const weight = tf.variable(tf.ones([3, 4]));
    const before = tf.memory().numTensors;
    const optimizer = new AdamW([["w", weight]]);
    expect(tf.memory().numTensors).toBe(before + 2); // the two moment estimates
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before);
    weight.dispose();
  });

  it("rejects negative or non-finite options", () => {
    expect(() => new AdamW([], { learningRate: -1 })).toThrow(/learningRate must be a finite number/);
  });
});

describe("learning-rate schedule", () => {
  const schedule = { maxLearningRate: 1e-3, minLearningRate: 1e-4, warmupSteps: 10, totalSteps: 110 };
  it("warms up linearly, decays along a cosine, then stays at the minimum", () => {
    expect(learningRateAt(0, schedule)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt(9, schedule)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(10, schedule)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(60, schedule)).toBeCloseTo(5.5e-4, 12); // halfway: the mean of max and min
    expect(learningRateAt(110, schedule)).toBe(1e-4);
    expect(learningRateAt(500, schedule)).toBe(1e-4);
    for (let step = 11; step < 110; step++)
      expect(learningRateAt(step, schedule)).toBeLessThan(learningRateAt(step - 1, schedule));
  });
});

describe("gradient clipping", () => {
  it("scales all gradients by one factor so the global norm is the maximum", () => {
    const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor1d([0, 4]) }; // global norm 5
    const { clipped, norm } = clipByGlobalNorm(grads, 1);
    expect(norm.dataSync()[0]).toBeCloseTo(5, 5);
    expect(Array.from(clipped.a.dataSync())[0]).toBeCloseTo(0.6, 5);
    expect(Array.from(clipped.b.dataSync())[1]).toBeCloseTo(0.8, 5);
    const small = clipByGlobalNorm(grads, 10);
    expect(Array.from(small.clipped.a.dataSync())).toEqual([3, 0]); // under the limit: unchanged
    expect(Array.from(small.clipped.b.dataSync())).toEqual([0, 4]);
    tf.dispose([norm, small.norm, ...Object.values(grads), ...Object.values(clipped), ...Object.values(small.clipped)]);
  });
});

function tokens(length: number, vocab: number, seed = 3): number[] {
  let state = seed;
  return Array.from({ length }, () => {
    state = (state * 1103515245 + 12345) % 2147483648; // a linear congruential generator
    return state % vocab;
  });
}

describe("Trainer", () => {
  it("lowers the loss on a repetitive text, frees its tensors, and records history", async () => {
    const text = "abcdefgh"
      .repeat(200)
      .split("")
      .map((c) => c.charCodeAt(0) - 97);
    const model = new GPT({ preset: "tiny", vocabSize: 8 });
    const data = new TokenDataset(text, { contextLength: 16, batchSize: 8, seed: 1 });
    const trainer = new Trainer(model, data, {
      maxSteps: 60,
      warmupSteps: 5,
      learningRate: 1e-2,
      evalInterval: 30,
      evalBatches: 2,
    });
    await trainer.trainStep(); // the first step allocates the optimizer's state; count tensors after it
    const before = tf.memory().numTensors;
    const history = await trainer.train({ progress: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(history.steps).toHaveLength(60);
    expect(history.evals.map((e) => e.step)).toEqual([30, 60]);
    expect(history.evals[1].validation).toBeLessThan(0.5); // ln 8 ≈ 2.08 at the start
    trainer.dispose();
    model.dispose();
  });

  it("accumulating two half batches equals one step on the full batch", async () => {
    const stream = tokens(400, 65);
    const run = async (batchSize: number, accumulation: number, gradientClip: number) => {
      const model = new GPT({ preset: "tiny" });
      const data = new TokenDataset(stream, { contextLength: 16, batchSize: 8, seed: 5 });
      // Draw the same 8 windows either as one batch or as two batches of 4.
      const windows = data.nextBatch("train");
      const halves = [0, 4].map((start) => ({
        inputs: windows.inputs.slice([start, 0], [4, 16]),
        targets: windows.targets.slice([start, 0], [4, 16]),
      }));
      let call = 0;
      const source = {
        nextBatch: () =>
          batchSize === 8 ? { inputs: windows.inputs.clone(), targets: windows.targets.clone() } : halves[call++ % 2],
        getState: () => 0,
        setState: () => undefined,
      };
      const trainer = new Trainer(model, source, {
        maxSteps: 1,
        warmupSteps: 1,
        gradientAccumulationSteps: accumulation,
        gradientClip,
      });
      const result = await trainer.trainStep();
      const weights = Array.from(model.h[0].attn.c_attn.weight.dataSync());
      tf.dispose([windows.inputs, windows.targets]);
      trainer.dispose();
      model.dispose();
      return { loss: result.loss, gradientNorm: result.gradientNorm, weights };
    };
    // AdamW's first step is about lr · sign(gradient) whatever the gradient's scale, so equal weights alone would
    // not catch a gradient summed instead of averaged: the gradient norm (before clipping) must match too.
    for (const gradientClip of [1e9, 0.05]) {
      // 1e9: the norm is measured, nothing is clipped
      const whole = await run(8, 1, gradientClip);
      const accumulated = await run(4, 2, gradientClip);
      expect(accumulated.loss).toBeCloseTo(whole.loss, 5);
      expect(accumulated.gradientNorm / whole.gradientNorm).toBeCloseTo(1, 5);
      if (gradientClip < 1) expect(whole.gradientNorm).toBeGreaterThan(gradientClip); // clipping really happened
      const worst = Math.max(...whole.weights.map((w, i) => Math.abs(w - accumulated.weights[i])));
      expect(worst).toBeLessThan(1e-6);
    }
  });

  it("stops with a clear error when the loss becomes NaN, before the weights are touched", async () => {
    const model = new GPT({ preset: "tiny" });
    const data = new TokenDataset(tokens(400, 65), { contextLength: 16, batchSize: 2, seed: 1 });
    const trainer = new Trainer(model, data, { maxSteps: 3, warmupSteps: 1 });
    await trainer.trainStep();
    const before = Array.from(model.h[0].mlp.c_fc.weight.dataSync());
    // A weight that became NaN (as in a run that diverged) makes the next loss NaN.
    const bias = model.ln_f.bias!;
    const saved = bias.clone();
    const nan = tf.fill(bias.shape, Number.NaN);
    bias.assign(nan);
    nan.dispose();
    const tensors = tf.memory().numTensors;
    await expect(trainer.trainStep()).rejects.toThrow(
      /at step 2 the loss is NaN: training diverged\. The weights were not updated/,
    );
    expect(tf.memory().numTensors).toBe(tensors);
    expect(Array.from(model.h[0].mlp.c_fc.weight.dataSync())).toEqual(before);
    expect(trainer.step).toBe(1);
    bias.assign(saved);
    saved.dispose();
    trainer.dispose();
    model.dispose();
  });

  it("rejects bad options and bad data with clear errors", () => {
    const model = new GPT({ preset: "tiny" });
    const data = new TokenDataset(tokens(400, 65), { contextLength: 16 });
    expect(() => new Trainer(model, data, { maxSteps: 0 })).toThrow(/maxSteps must be a positive integer/);
    expect(() => new Trainer(model, data, { maxSteps: 5, gradientAccumulationSteps: 1.5 })).toThrow(
      /gradientAccumulationSteps/,
    );
    expect(() => new TokenDataset([], { contextLength: 16 })).toThrow(/token stream is empty/);
    expect(() => new TokenDataset(tokens(30, 65), { contextLength: 16 })).toThrow(/needs contextLength \+ 1/);
    model.dispose();
  });
});

describe("TokenDataset", () => {
  it("draws windows whose targets are the inputs shifted by one, reproducibly", () => {
    const stream = Array.from({ length: 1000 }, (_, i) => i % 97);
    const a = new TokenDataset(stream, { contextLength: 8, batchSize: 4, seed: 9 });
    const b = new TokenDataset(stream, { contextLength: 8, batchSize: 4, seed: 9 });
    const batchA = a.nextBatch("train");
    const batchB = b.nextBatch("train");
    const inputs = batchA.inputs.arraySync();
    const targets = batchA.targets.arraySync();
    inputs.forEach((row, r) => row.forEach((id, t) => expect(targets[r][t]).toBe((id + 1) % 97)));
    expect(batchB.inputs.arraySync()).toEqual(inputs);
    // The validation split is the last 10% of the stream and never overlaps training windows.
    expect(a.train.length).toBe(900);
    expect(a.validation[0]).toBe(stream[900]);
    tf.dispose([batchA.inputs, batchA.targets, batchB.inputs, batchB.targets]);
  });
});
