/**
 * Checks for 05-training-step: which parameters decay (against gpt-course's `defaultDecays`), the loss and
 * gradients (against `tf.variableGrads` of gpt-course's `crossEntropy`), clipping (against `clipByGlobalNorm`),
 * AdamW's first and second updates (against gpt-course's `AdamW`), and a whole step, twice, against gpt-course's
 * `Trainer` on an identical model and batch. Wrong AdamW variants (no bias correction, decay coupled to the
 * gradient or on every parameter, t counted per parameter, moments not kept) are recognised by replaying them in a
 * short independent computation.
 */
import {
  AdamW as LibAdamW,
  type AdamWOptions,
  type BatchSource,
  clipByGlobalNorm as libClipByGlobalNorm,
  crossEntropy,
  defaultDecays,
  GPT,
  type Random,
  tf,
  Trainer,
} from "gpt-course";
import {
  type Conforms,
  defineExercise,
  expectClose,
  expectCloseArrays,
  expectTensor,
  fail,
  randomChoice,
  randomFloat,
  randomInt,
  randomTensor,
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** A tiny GPT (the `tiny` preset, shrunk at random). Same seed, same weights. */
function modelConfig(random: Random, tieWeights = random.next() < 0.5) {
  const numHeads = randomInt(random, 1, 2);
  return {
    preset: "tiny" as const,
    vocabSize: randomInt(random, 20, 65),
    contextLength: randomInt(random, 6, 12),
    numLayers: randomInt(random, 1, 2),
    numHeads,
    embeddingDim: numHeads * randomInt(random, 4, 8),
    tieWeights,
    seed: random.seed(),
  };
}

function randomBatch(random: Random, model: GPT): { inputs: tf.Tensor2D; targets: tf.Tensor2D } {
  const [B, T, V] = [randomInt(random, 1, 3), model.config.contextLength, model.config.vocabSize];
  const ids = () =>
    tf.tensor2d(
      Array.from({ length: B * T }, () => random.int(V)),
      [B, T],
      "int32",
    );
  return { inputs: ids(), targets: ids() };
}

/** Random AdamW settings, chosen so that bias correction and weight decay both change the result visibly. */
function randomOptions(random: Random): AdamWOptions {
  return {
    learningRate: randomFloat(random, 2e-3, 2e-2),
    beta1: randomChoice(random, [0.8, 0.9]),
    beta2: randomChoice(random, [0.95, 0.98, 0.999]),
    epsilon: 1e-8,
    weightDecay: randomFloat(random, 0.1, 0.5),
  };
}

// ---------------------------------------------------------------------------------------------------------
// AdamW on a few named weights, with an independent float64 replay of common mistakes
// ---------------------------------------------------------------------------------------------------------

/** Parameters named like a GPT's: matrices that decay, and biases, gains and an embedding that do not. */
function randomParameters(random: Random): Array<{ name: string; shape: number[]; values: Float32Array }> {
  const [C, V] = [randomInt(random, 2, 4), randomInt(random, 3, 6)];
  const shapes: Array<[string, number[]]> = [
    ["wte.weight", [V, C]],
    ["h.0.attn.c_attn.weight", [C, 3 * C]],
    ["h.0.attn.c_attn.bias", [3 * C]],
    ["h.0.ln_2.weight", [C]],
    ["lm_head.weight", [C, V]],
  ];
  return shapes.map(([name, shape]) => ({
    name,
    shape,
    values: randomTensor(random, shape).dataSync() as Float32Array,
  }));
}

interface Mistake {
  biasCorrection?: false;
  decay?: "coupled" | "everywhere" | "nowhere" | "without lr";
  stepPerParameter?: true;
  momentsForgotten?: true;
}

/** AdamW in float64, with an optional mistake, over several updates. */
function replayAdamW(
  parameters: ReadonlyArray<{ name: string; values: ArrayLike<number> }>,
  updates: ReadonlyArray<Record<string, ArrayLike<number>>>,
  { learningRate: lr, beta1, beta2, epsilon, weightDecay }: AdamWOptions,
  decaying: ReadonlySet<string>,
  mistake: Mistake = {},
): Record<string, number[]> {
  const w = Object.fromEntries(parameters.map((p) => [p.name, Array.from(p.values)]));
  const m = Object.fromEntries(parameters.map((p) => [p.name, Array.from(p.values, () => 0)]));
  const v = Object.fromEntries(parameters.map((p) => [p.name, Array.from(p.values, () => 0)]));
  let t = 0;
  for (const gradients of updates) {
    if (!mistake.stepPerParameter) t++;
    for (const { name } of parameters) {
      if (mistake.stepPerParameter) t++;
      const decays = mistake.decay === "everywhere" ? true : mistake.decay === "nowhere" ? false : decaying.has(name);
      const [wn, mn, vn, g] = [w[name]!, m[name]!, v[name]!, gradients[name]!];
      for (let i = 0; i < wn.length; i++) {
        let gi = g[i]!;
        if (mistake.decay === "coupled" && decays) gi += weightDecay * wn[i]!;
        mn[i] = (mistake.momentsForgotten ? 0 : beta1 * mn[i]!) + (1 - beta1) * gi;
        vn[i] = (mistake.momentsForgotten ? 0 : beta2 * vn[i]!) + (1 - beta2) * gi * gi;
        const [c1, c2] = mistake.biasCorrection === false ? [1, 1] : [1 - beta1 ** t, 1 - beta2 ** t];
        const step = mn[i]! / c1 / (Math.sqrt(vn[i]! / c2) + epsilon);
        const decay =
          decays && mistake.decay !== "coupled"
            ? mistake.decay === "without lr"
              ? (weightDecay * wn[i]!) / lr
              : weightDecay * wn[i]!
            : 0;
        wn[i] = wn[i]! - lr * (step + decay);
      }
    }
  }
  return w;
}

const MISTAKES: Array<[Mistake, string]> = [
  [
    { biasCorrection: false },
    "The bias correction is missing: divide m by 1 − β₁ᵗ and v by 1 − β₂ᵗ (t = 1 on the first update), because both start at 0.",
  ],
  [
    { decay: "coupled" },
    "That is Adam with L2 regularisation: λw added to the gradient. AdamW's decay is decoupled: w ← w − lr·(m̂/(√v̂ + ε) + λw).",
  ],
  [
    { decay: "everywhere" },
    "Weight decay is applied to every parameter; only where decays(name, w) is true (matrices, not biases, LayerNorm gains or embeddings).",
  ],
  [
    { decay: "nowhere" },
    "No weight decay was applied: w ← w − lr·(m̂/(√v̂ + ε) + λw) for the parameters where decays(name, w) is true.",
  ],
  [{ decay: "without lr" }, "The decay must be scaled by the learning rate too: w ← w − lr·λ·w, not w − λ·w."],
  [
    { stepPerParameter: true },
    "t counts updates, not parameters: increment this.step once per applyGradients call, before the loop.",
  ],
  [
    { momentsForgotten: true },
    "m and v must carry over from one update to the next (assign them back into this.m and this.v), so the second update averages both gradients.",
  ],
];

const TOLERANCE = { atol: 2e-6, rtol: 1e-5 };

/** Copies of the gradients for the learner's code, so the originals survive whatever it disposes. */
const copies = (gradients: Record<string, tf.Tensor>): Record<string, tf.Tensor> =>
  Object.fromEntries(Object.entries(gradients).map(([name, g]) => [name, g.clone()]));

/** The names the learner's decays() picks, or undefined when it is not written yet. */
function yourDecays(decays: Exports["decays"], parameters: Array<[string, tf.Variable]>): Set<string> | undefined {
  try {
    return new Set(parameters.filter(([name, variable]) => decays(name, variable) === true).map(([name]) => name));
  } catch {
    return undefined;
  }
}

function closeTo(actual: ArrayLike<number>, expected: ArrayLike<number>): boolean {
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i]! - expected[i]!) <= TOLERANCE.atol + TOLERANCE.rtol * Math.abs(expected[i]!)))
      return false;
  }
  return true;
}

async function checkAdamW({ AdamW, decays }: Exports, random: Random, numberOfUpdates: number): Promise<void> {
  const parameters = randomParameters(random);
  const options = randomOptions(random);
  const make = () =>
    parameters.map(({ name, shape, values }) => [name, tf.variable(tf.tensor(values, shape))] as [string, tf.Variable]);
  const [mine, reference] = [make(), make()];
  const updates = Array.from({ length: numberOfUpdates }, () =>
    Object.fromEntries(
      parameters.map(({ name, shape }) => [name, randomTensor(random, shape, randomFloat(random, 0.01, 2))]),
    ),
  );
  const libOptimizer = new LibAdamW(reference, options);
  let optimizer: InstanceType<typeof AdamW> | undefined;
  try {
    optimizer = new AdamW(mine, { ...options });
    for (const [u, gradients] of updates.entries()) {
      optimizer.applyGradients(copies(gradients));
      libOptimizer.applyGradients(gradients);
      if (optimizer.step !== u + 1)
        fail(
          `after ${u + 1} update(s), optimizer.step is ${optimizer.step}.`,
          "Increment this.step once per applyGradients call.",
        );
    }
    const got = Object.fromEntries(mine.map(([name, variable]) => [name, variable.dataSync() as Float32Array]));
    const what = (name: string) =>
      `${name} after ${numberOfUpdates} update${numberOfUpdates > 1 ? "s" : ""} (lr ${options.learningRate.toFixed(4)}, β₁ ${options.beta1}, β₂ ${options.beta2}, λ ${options.weightDecay.toFixed(3)})`;
    for (const [name, variable] of reference) {
      const values = got[name]!;
      if (values.some((x) => !Number.isFinite(x))) {
        fail(
          `${what(name)} holds NaN or Infinity.`,
          "On the first update t is 1: increment this.step before computing 1 − β₁ᵗ (with t = 0 it is 0, and m / 0 is NaN).",
        );
      }
      const expected = variable.dataSync();
      if (!closeTo(values, expected)) {
        const gradients = updates.map((g) => Object.fromEntries(Object.entries(g).map(([n, t]) => [n, t.dataSync()])));
        const all = Object.values(got);
        const matches = (decaying: ReadonlySet<string>, mistake?: Mistake) => {
          const replay = replayAdamW(parameters, gradients, options, decaying, mistake);
          return parameters.every((p, i) => closeTo(all[i]!, replay[p.name]!));
        };
        const right = new Set(reference.filter(([n, variable]) => defaultDecays(n, variable)).map(([n]) => n));
        const yours = yourDecays(decays, reference);
        const hint =
          yours && [...yours].join() !== [...right].join() && matches(yours)
            ? `The update itself is right, but decays() is not: it decays {${[...yours].join(", ")}}, it should decay {${[...right].join(", ")}}. See the first check.`
            : MISTAKES.find(([mistake]) => matches(right, mistake))?.[1];
        expectCloseArrays(values, expected, what(name), { ...TOLERANCE, hint });
      }
    }
  } finally {
    optimizer?.dispose();
    libOptimizer.dispose();
    for (const [, variable] of [...mine, ...reference]) variable.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------
// A whole step, against gpt-course's Trainer
// ---------------------------------------------------------------------------------------------------------

/** Always the same batch (fresh copies: the Trainer disposes each batch after its step). */
function fixedBatches(inputs: tf.Tensor2D, targets: tf.Tensor2D): BatchSource {
  return {
    nextBatch: () => ({ inputs: inputs.clone(), targets: targets.clone() }),
    getState: () => 0,
    setState: () => {},
  };
}

function largestDifference(a: GPT, b: GPT): { name: string; difference: number } {
  const other = new Map(b.namedParameters());
  let worst = { name: "", difference: 0 };
  for (const [name, variable] of a.namedParameters()) {
    const difference = tf.tidy(() => variable.sub(other.get(name)!).abs().max().dataSync()[0] as number);
    if (!(difference <= worst.difference)) worst = { name, difference };
  }
  return worst;
}

export default defineExercise<Exports>({
  title: "One training step",
  teaches:
    "loss and gradients with tf.variableGrads, global-norm clipping, AdamW with bias correction and decoupled weight decay on matrices only",
  checks: [
    {
      name: "decays picks the weight matrices, not biases, LayerNorm weights or embeddings",
      hint: 'variable.rank >= 2 && the name does not start with "wte." or "wpe.".',
      run({ decays }, random) {
        for (const tieWeights of [true, false]) {
          const model = new GPT(modelConfig(random, tieWeights));
          try {
            for (const [name, variable] of model.namedParameters()) {
              const [yours, expected] = [decays(name, variable), defaultDecays(name, variable)];
              if (yours === expected) continue;
              const hint = expected
                ? "A weight matrix that multiplies activations (attention, MLP, an untied lm_head) is decayed."
                : variable.rank < 2
                  ? "Biases and LayerNorm's γ and β (rank 1) are not decayed: shrinking them towards 0 is no useful prior."
                  : "The embedding tables are not decayed: a row only gets a gradient when its token occurs, so decay would slowly erase rare tokens.";
              fail(
                `decays("${name}", a variable of shape [${variable.shape}]) is ${yours}, expected ${expected}.`,
                hint,
              );
            }
          } finally {
            model.dispose();
          }
        }
      },
    },
    {
      name: "lossAndGradients gives the loss and every parameter's gradient, keyed by parameter name",
      hint:
        "tf.variableGrads(() => crossEntropy(model.forward(inputs), targets)) returns { value, grads }; grads is keyed by " +
        "each tf.Variable's own name (variable.name): map them to parameter names with model.namedParameters().",
      run({ lossAndGradients }, random) {
        const model = new GPT(modelConfig(random));
        try {
          const { inputs, targets } = randomBatch(random, model);
          const nameOf = new Map(model.namedParameters().map(([name, variable]) => [variable.name, name]));
          const expected = tf.variableGrads(() => crossEntropy(model.forward(inputs), targets));
          const result = lossAndGradients(model, inputs, targets);
          expectClose(result?.loss, expected.value, "the loss", {
            hint: "The loss is crossEntropy(model.forward(inputs), targets), the value that tf.variableGrads returns.",
          });
          const gradients = result.gradients ?? {};
          const names = model.namedParameters().map(([name]) => name);
          const missing = names.filter((name) => !(name in gradients));
          if (missing.length > 0) {
            const byVariableName = Object.keys(gradients).some((key) => nameOf.has(key) && !names.includes(key));
            fail(
              `the gradients have no entry for ${missing
                .slice(0, 3)
                .map((n) => `"${n}"`)
                .join(", ")}${missing.length > 3 ? ` and ${missing.length - 3} more` : ""}.`,
              byVariableName
                ? 'Your keys are TensorFlow.js\'s variable names (like "variable12"): re-key them by parameter name with model.namedParameters().'
                : undefined,
            );
          }
          for (const [variableName, gradient] of Object.entries(expected.grads)) {
            const name = nameOf.get(variableName)!;
            expectClose(gradients[name], gradient, `the gradient of ${name}`, { atol: 1e-6, rtol: 1e-3 });
          }
        } finally {
          model.dispose();
        }
      },
    },
    {
      name: "clipByGlobalNorm scales all gradients together when their global norm exceeds maxNorm",
      hint:
        "‖g‖ = √(Σ over all gradients of Σ g²), one number for all of them; every gradient is multiplied by the same " +
        "factor min(1, maxNorm / (‖g‖ + 1e-6)).",
      run({ clipByGlobalNorm }, random) {
        const gradients = Object.fromEntries(
          Array.from({ length: randomInt(random, 3, 5) }, (_, i) => [
            `p${i}.weight`,
            randomTensor(random, [randomInt(random, 1, 4), randomInt(random, 1, 5)], randomFloat(random, 0.1, 3)),
          ]),
        );
        const expected = libClipByGlobalNorm(gradients, 1);
        const norm = expected.norm.dataSync()[0] as number;
        const maxNorm = norm * randomFloat(random, 0.2, 0.8);
        const reference = libClipByGlobalNorm(gradients, maxNorm);
        const result = clipByGlobalNorm(copies(gradients), maxNorm);
        const yourNorm = result?.norm;
        if (typeof yourNorm !== "number" || !(Math.abs(yourNorm - norm) <= 1e-4 * norm)) {
          const hint =
            typeof yourNorm === "number" && Math.abs(yourNorm - norm * norm) <= 1e-4 * norm * norm
              ? "That is the sum of squares: the norm is its square root."
              : undefined;
          fail(
            `the global norm is ${typeof yourNorm === "number" ? yourNorm.toPrecision(6) : yourNorm}, expected ${norm.toPrecision(6)}.`,
            hint,
          );
        }
        for (const [name, g] of Object.entries(gradients)) {
          const own = tf.tidy(() => g.square().sum().sqrt().dataSync()[0] as number);
          const perTensor = g.mul(Math.min(1, maxNorm / (own + 1e-6)));
          const clipped = expectTensor(result.clipped?.[name], `the clipped gradient of ${name}`);
          const hint =
            clipped.shape.join() === g.shape.join() &&
            tf.tidy(() => clipped.sub(perTensor).abs().max().dataSync()[0] as number) < 1e-6 &&
            own > maxNorm
              ? "Each gradient was clipped to its own norm. Clipping is global: one factor, from the norm of all gradients together, so the update keeps its direction."
              : undefined;
          expectClose(
            clipped,
            reference.clipped[name]!,
            `the clipped gradient of ${name} (global norm ${norm.toFixed(3)}, maxNorm ${maxNorm.toFixed(3)})`,
            { hint },
          );
        }
      },
    },
    {
      name: "clipByGlobalNorm leaves gradients whose global norm is below maxNorm unchanged",
      hint: "The factor is min(1, maxNorm / (‖g‖ + 1e-6)): clipping only ever shrinks gradients, it never scales small ones up.",
      run({ clipByGlobalNorm }, random) {
        const gradients = Object.fromEntries(
          Array.from({ length: randomInt(random, 2, 4) }, (_, i) => [
            `p${i}.bias`,
            randomTensor(random, [randomInt(random, 2, 6)], randomFloat(random, 0.01, 0.1)),
          ]),
        );
        const norm = libClipByGlobalNorm(gradients, 1).norm.dataSync()[0] as number;
        const maxNorm = norm * randomFloat(random, 1.5, 4);
        const result = clipByGlobalNorm(copies(gradients), maxNorm);
        for (const [name, g] of Object.entries(gradients)) {
          const clipped = expectTensor(result?.clipped?.[name], `the clipped gradient of ${name}`);
          const scaledUp =
            clipped.shape.join() === g.shape.join() &&
            tf.tidy(
              () =>
                clipped
                  .sub(g.mul(maxNorm / norm))
                  .abs()
                  .max()
                  .dataSync()[0] as number,
            ) < 1e-5;
          expectClose(
            clipped,
            g,
            `the gradient of ${name} (global norm ${norm.toFixed(4)} below maxNorm ${maxNorm.toFixed(4)})`,
            {
              hint: scaledUp
                ? "You scaled the gradients *up* to maxNorm: use min(1, maxNorm / (‖g‖ + 1e-6)) as the factor."
                : undefined,
            },
          );
        }
      },
    },
    {
      name: "AdamW's first update matches gpt-course's AdamW (bias correction, decoupled decay on matrices only)",
      hint:
        "t = 1: m = (1 − β₁)g, v = (1 − β₂)g², m̂ = m / (1 − β₁), v̂ = v / (1 − β₂), w ← w − lr·(m̂ / (√v̂ + ε) + λw), the λw " +
        "term only where decays(name, w) is true.",
      run: (exports, random) => checkAdamW(exports, random, 1),
    },
    {
      name: "AdamW's second and third updates match too (moments carried over, t counted per update)",
      hint:
        "m and v are running means: each update starts from the previous update's m and v (this.m.get(name), then " +
        "assign). t = this.step goes 1, 2, 3, … once per applyGradients call.",
      run: (exports, random) => checkAdamW(exports, random, 3),
    },
    {
      name: "trainStep, twice, leaves the same weights as gpt-course's Trainer on the same model and batch",
      hint:
        "model.train(); lossAndGradients(model, inputs, targets); clipByGlobalNorm(gradients, maxNorm); " +
        "optimizer.applyGradients(clipped); return the loss read before the update. Check the other functions first; " +
        "this check uses ε = 1e-5, so AdamW must read this.options.epsilon rather than assume 1e-8.",
      async run({ AdamW, trainStep }, random) {
        const config = modelConfig(random);
        // ε = 1e-5 rather than 1e-8: for a weight whose gradient is almost 0, m̂ / (√v̂ + ε) turns float32 rounding
        // noise (two correct implementations round differently) into a step of up to ±lr. With ε well above that
        // noise and well below the typical gradient, both steps agree to a small fraction of lr.
        const options = { ...randomOptions(random), epsilon: 1e-5 };
        const maxNorm = randomFloat(random, 0.05, 0.5);
        const [mine, library, unclipped] = [new GPT(config), new GPT(config), new GPT(config)];
        const { inputs, targets } = randomBatch(random, mine);
        const trainerOptions = {
          maxSteps: 10,
          learningRate: options.learningRate,
          minLearningRate: options.learningRate / 10,
          warmupSteps: 1, // with 1 warm-up step, steps 1 and 2 both run at the full learning rate
          weightDecay: options.weightDecay,
          beta1: options.beta1,
          beta2: options.beta2,
          gradientClip: maxNorm,
          evalInterval: 0,
        };
        const trainer = new Trainer(library, fixedBatches(inputs, targets), trainerOptions);
        const withoutClipping = new Trainer(unclipped, fixedBatches(inputs, targets), {
          ...trainerOptions,
          gradientClip: 0,
        });
        for (const { optimizer } of [trainer, withoutClipping]) optimizer.options.epsilon = options.epsilon; // TrainerOptions has no ε
        let optimizer: InstanceType<typeof AdamW> | undefined;
        try {
          optimizer = new AdamW(mine.namedParameters(), { ...options });
          for (let step = 1; step <= 2; step++) {
            const before = mine.namedParameters().map(([, variable]) => variable.clone());
            const loss = trainStep(mine, optimizer, inputs, targets, maxNorm);
            const expected = await trainer.trainStep();
            await withoutClipping.trainStep();
            if (typeof loss !== "number" || !(Math.abs(loss - expected.loss) <= 1e-4)) {
              fail(
                `step ${step}: trainStep returned the loss ${loss}, expected ${expected.loss.toFixed(5)}.`,
                "Return the loss of the batch computed before the update, as a number (loss.dataSync()[0]).",
              );
            }
            // NaN counts as moved (it fails below, with its own hint).
            const moved = mine
              .namedParameters()
              .some(
                ([, variable], i) =>
                  !(tf.tidy(() => variable.sub(before[i]!).abs().max().dataSync()[0] as number) === 0),
              );
            tf.dispose(before);
            if (!moved) {
              fail(
                `step ${step} left every weight unchanged.`,
                "optimizer.applyGradients finds gradients by parameter name: pass it the clipped gradients from lossAndGradients (keyed by parameter name).",
              );
            }
            // Two correct implementations differ by float32 rounding, far below 0.5% of lr (see ε above); real
            // mistakes (no clipping, another update rule) move weights by 10% of lr or more.
            const { name, difference } = largestDifference(mine, library);
            const allowed = 5e-3 * options.learningRate;
            if (!(difference <= allowed)) {
              const hint = Number.isNaN(difference)
                ? "Some weights became NaN: see the AdamW checks (t is 1 on the first update, so 1 − β₁ᵗ is never 0)."
                : largestDifference(mine, unclipped).difference <= allowed
                  ? "Your weights are those of a step without clipping: clip the gradients (clipByGlobalNorm with maxNorm) before the update."
                  : undefined;
              fail(
                `after step ${step}, ${name} differs from the Trainer's by ${difference.toExponential(2)} (allowed ${allowed.toExponential(1)}, 0.5% of the learning rate).`,
                hint,
              );
            }
          }
          if (optimizer.step !== 2) fail(`after two steps optimizer.step is ${optimizer.step}, expected 2.`);
        } finally {
          optimizer?.dispose();
          trainer.dispose();
          withoutClipping.dispose();
          for (const model of [mine, library, unclipped]) model.dispose();
        }
      },
    },
  ],
});
