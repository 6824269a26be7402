/**
 * Checks for 07-lora: the adapter's parameters and their initialisation, freezing (which variables are
 * trainable, which get gradients, and the gradient of B against a short independent computation), the forward
 * pass against gpt-course's `LoRAAdapter` added to the base layer, and merging against W + `adapter.delta()`.
 * A missing or inverted α/r, a base left trainable and a merge that forgets the scale or the bias are recognised
 * and named.
 */
import { Linear, LoRAAdapter, type Random, tf } from "gpt-course";
import {
  allClose,
  type Conforms,
  defineExercise,
  expectClose,
  expectShape,
  expectTensor,
  fail,
  randomChoice,
  randomInt,
  randomTensor,
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/**
 * A base Linear layer with random weights (and a random bias, when it has one), and LoRA settings. `large` gives
 * A at least 96 entries, enough to estimate its standard deviation reliably.
 */
function randomSetting(random: Random, large = false): { base: Linear; rank: number; alpha: number; seed: number } {
  const [inFeatures, outFeatures] = large
    ? [randomInt(random, 24, 36), randomInt(random, 9, 16)]
    : [randomInt(random, 4, 16), randomInt(random, 3, 12)];
  const base = new Linear(inFeatures, outFeatures, { bias: random.next() < 0.7, initStd: 0.5, seed: random.seed() });
  base.bias?.assign(randomTensor(random, [outFeatures], 0.5));
  const rank = randomChoice(
    random,
    (large ? [4, 8] : [1, 2, 4, 8]).filter((r) => r < Math.min(inFeatures, outFeatures)),
  );
  return {
    base,
    rank,
    alpha: randomChoice(
      random,
      [1, 8, 16, 32].filter((a) => a !== rank),
    ),
    seed: random.seed(),
  };
}

/** A random input (..., in) with one or two leading axes. */
function randomInput(random: Random, inFeatures: number): tf.Tensor {
  const leading = random.next() < 0.5 ? [randomInt(random, 1, 4)] : [randomInt(random, 1, 3), randomInt(random, 1, 4)];
  return randomTensor(random, [...leading, inFeatures]);
}

function disposeAll(...modules: Array<{ dispose(): void } | undefined>): void {
  for (const module of modules) {
    try {
      module?.dispose();
    } catch {
      // already disposed, or not fully built (a starter's constructor stops at its TODO)
    }
  }
}

/** The learner's layer and gpt-course's adapter holding the same random A and B. */
function withRandomAdapters(
  { LoRALinear }: Exports,
  random: Random,
  f: (
    lora: InstanceType<Exports["LoRALinear"]>,
    adapter: LoRAAdapter,
    setting: ReturnType<typeof randomSetting>,
  ) => void,
): void {
  const setting = randomSetting(random);
  const { base, rank, alpha } = setting;
  const adapter = new LoRAAdapter(base.inFeatures, base.outFeatures, rank, alpha, setting.seed);
  let lora: InstanceType<Exports["LoRALinear"]> | undefined;
  try {
    lora = new LoRALinear(base, { rank, alpha, seed: setting.seed });
    const [A, B] = [randomTensor(random, adapter.A.shape, 0.5), randomTensor(random, adapter.B.shape, 0.5)];
    adapter.A.assign(A);
    adapter.B.assign(B);
    lora.A.assign(A);
    lora.B.assign(B);
    f(lora, adapter, setting);
  } finally {
    disposeAll(lora, adapter, base);
  }
}

/** Names a wrong scale by the factor the learner's correction turned out to have. */
function scaleHint(
  result: tf.Tensor,
  base: tf.Tensor,
  correction: tf.Tensor,
  { rank, alpha }: { rank: number; alpha: number },
): string | undefined {
  const wrong: Array<[number, string]> = [
    [1, "The scale α/r is missing: multiply x·A·B by this.scale = alpha / rank."],
    [rank / alpha, "The scale is upside down: α/r (alpha / rank), not r/α."],
    [alpha, "The scale is α/r, not α: divide by the rank too."],
  ];
  for (const [factor, hint] of wrong) if (allClose(result, base.add(correction.mul(factor)), 1e-4, 1e-4)) return hint;
  return undefined;
}

export default defineExercise<Exports>({
  title: "LoRA",
  teaches: "a low-rank update y = xW + b + (α/r)·xAB, B starting at zero, freezing the base weights, merging AB into W",
  checks: [
    {
      name: "LoRALinear's parameters are A (in, r), random with std ≈ 1/√in, and B (r, out), all zeros; scale = α/r",
      hint:
        'this.A = this.addParameter("A", tf.randomNormal([in, r], 0, 1 / Math.sqrt(in), "float32", seed)); ' +
        'this.B = this.addParameter("B", tf.zeros([r, out])); this.scale = alpha / rank.',
      run({ LoRALinear }, random) {
        const { base, rank, alpha, seed } = randomSetting(random, true);
        let lora: InstanceType<Exports["LoRALinear"]> | undefined;
        try {
          lora = new LoRALinear(base, { rank, alpha, seed });
          const [inFeatures, outFeatures] = [base.inFeatures, base.outFeatures];
          const names = lora.namedParameters().map(([name, p]) => `${name} [${p.shape.join(", ")}]`);
          const expected = [`A [${inFeatures}, ${rank}]`, `B [${rank}, ${outFeatures}]`];
          if (names.join("; ") !== expected.join("; ")) {
            fail(
              `the layer's parameters are ${names.join("; ") || "none"}, expected ${expected.join("; ")}.`,
              names.some((n) => n.startsWith("base.") || n.startsWith("weight"))
                ? "Only A and B belong to the LoRA layer: keep the base layer in this.base without registering it (no addModule)."
                : undefined,
            );
          }
          expectClose(lora.B, tf.zeros([rank, outFeatures]), "B at initialisation", {
            atol: 0,
            hint: "B starts at zero, so that the layer starts as exactly the base layer: training begins from the pretrained model.",
          });
          const std = tf.tidy(() => tf.moments(lora!.A).variance.sqrt().dataSync()[0] as number);
          const target = 1 / Math.sqrt(inFeatures);
          if (!(std > 0.6 * target && std < 1.5 * target)) {
            fail(
              `A's values have a standard deviation of ${std.toPrecision(3)}, expected about 1/√in = ${target.toPrecision(3)}.`,
              std === 0
                ? "A must be random: with A = 0 as well as B = 0, B's gradient (α/r)·(xA)ᵀ·∂L/∂y is 0 and nothing ever trains."
                : 'tf.randomNormal([in, r], 0, 1 / Math.sqrt(in), "float32", seed): x·A then has about the size of x.',
            );
          }
          if (!(Math.abs(lora.scale - alpha / rank) < 1e-12)) {
            fail(
              `scale is ${lora.scale} for α = ${alpha}, r = ${rank}; expected ${alpha / rank}.`,
              "scale = alpha / rank.",
            );
          }
        } finally {
          disposeAll(lora, base);
        }
      },
    },
    {
      name: "only A and B are trainable and get gradients; B's gradient is (α/r)·(xA)ᵀ·∂L/∂y",
      hint:
        "Freeze the base: base.weight.trainable = false (and base.bias). tf.variableGrads then differentiates only A " +
        "and B. The correction must be (α/r)·(x·A)·B, inside forward.",
      run({ LoRALinear }, random) {
        const { base, rank, alpha, seed } = randomSetting(random);
        let lora: InstanceType<Exports["LoRALinear"]> | undefined;
        try {
          lora = new LoRALinear(base, { rank, alpha, seed });
          const frozen = [
            ["base.weight", base.weight],
            ["base.bias", base.bias],
          ] as const;
          for (const [name, variable] of frozen) {
            if (variable?.trainable)
              fail(
                `${name} is still trainable.`,
                `Set ${name}.trainable = false: the pretrained weights stay as they are, only A and B learn.`,
              );
          }
          if (!lora.A.trainable || !lora.B.trainable) fail("A and B must be trainable (addParameter makes them so).");
          const x = randomInput(random, base.inFeatures);
          const upstream = randomTensor(random, [...x.shape.slice(0, -1), base.outFeatures]); // ∂L/∂y for L = Σ y · upstream
          const layer = lora;
          const { grads } = tf.variableGrads(
            () => expectTensor(layer.forward(x), "forward(x)").mul(upstream).sum() as tf.Scalar,
          );
          const names = new Map([
            [lora.A.name, "A"],
            [lora.B.name, "B"],
            [base.weight.name, "base.weight"],
            [base.bias?.name ?? "", "base.bias"],
          ]);
          const got = Object.keys(grads)
            .map((key) => names.get(key) ?? key)
            .sort();
          if (got.join() !== "A,B")
            fail(`tf.variableGrads differentiated ${got.join(", ")}; only A and B should get gradients.`);
          const rows = x.reshape([-1, base.inFeatures]) as tf.Tensor2D;
          const expectedB = tf
            .matMul(
              tf.matMul(rows, lora.A as tf.Tensor2D),
              upstream.reshape([-1, base.outFeatures]) as tf.Tensor2D,
              true,
              false,
            )
            .mul(alpha / rank);
          const gradient = expectTensor(grads[lora.B.name], "the gradient of B");
          const scaled = (factor: number) =>
            gradient.shape.join() === expectedB.shape.join() && allClose(gradient, expectedB.mul(factor), 1e-4, 1e-3);
          const hint = scaled(1)
            ? undefined
            : scaled(rank / alpha)
              ? "B's gradient lacks the factor α/r: the correction in forward must be multiplied by this.scale."
              : scaled((rank / alpha) ** 2)
                ? "B's gradient has the factor r/α instead of α/r: this.scale = alpha / rank."
                : undefined;
          expectClose(gradient, expectedB, "the gradient of B", { atol: 1e-4, rtol: 1e-3, hint });
        } finally {
          disposeAll(lora, base);
        }
      },
    },
    {
      name: "a fresh LoRALinear computes exactly what its base layer computes (B = 0)",
      hint: "forward(x) = base.forward(x) + (α/r)·(x·A)·B; with B = 0 the correction is 0, so training starts from the base model.",
      run({ LoRALinear }, random) {
        const { base, rank, alpha, seed } = randomSetting(random);
        let lora: InstanceType<Exports["LoRALinear"]> | undefined;
        try {
          lora = new LoRALinear(base, { rank, alpha, seed });
          const x = randomInput(random, base.inFeatures);
          const what = `forward(x [${x.shape}]) of a fresh LoRALinear`;
          const result = expectTensor(lora.forward(x), what);
          expectShape(
            result,
            [...x.shape.slice(0, -1), base.outFeatures],
            what,
            "The output has x's leading axes and out features last: reshape the correction back.",
          );
          expectClose(result, base.forward(x), what);
        } finally {
          disposeAll(lora, base);
        }
      },
    },
    {
      name: "forward matches x·W + b + (α/r)·x·A·B (gpt-course's LoRAAdapter), with random A and B",
      hint:
        "rows = x.reshape([-1, in]); correction = matMul(matMul(rows, A), B).mul(this.scale), reshaped to x's leading " +
        "axes and out; add it to this.base.forward(x).",
      run(exports, random) {
        withRandomAdapters(exports, random, (lora, adapter, setting) => {
          const x = randomInput(random, setting.base.inFeatures);
          const what = `forward(x [${x.shape}]) with random A and B (r = ${setting.rank}, α = ${setting.alpha})`;
          const result = expectTensor(lora.forward(x), what);
          expectShape(result, [...x.shape.slice(0, -1), setting.base.outFeatures], what);
          const baseOutput = setting.base.forward(x);
          const correction = adapter.forward(x).div(adapter.scale);
          const expected = baseOutput.add(adapter.forward(x));
          const hint = allClose(result, expected) ? undefined : scaleHint(result, baseOutput, correction, setting);
          expectClose(result, expected, what, { hint });
        });
      },
    },
    {
      name: "merge gives a new Linear with W + (α/r)·A·B that computes the same outputs, and leaves the base unchanged",
      hint:
        "new Linear(in, out, { bias: base.bias !== undefined }); merged.weight.assign(W.add(matMul(A, B).mul(scale))); " +
        "merged.bias.assign(base.bias). Assign into the new layer, never into this.base. If forward fails its check, fix it first.",
      run(exports, random) {
        withRandomAdapters(exports, random, (lora, adapter, { base }) => {
          const weightBefore = base.weight.clone();
          const merged = lora.merge();
          try {
            if (!(merged instanceof Linear))
              fail("merge() should return a Linear (gpt-course's), a plain layer with no adapter.");
            if (merged === base || merged.weight === base.weight)
              fail("merge() returned the base layer itself: build a new Linear, so the base stays as it was.");
            expectClose(base.weight, weightBefore, "the base layer's weight after merge()", {
              atol: 0,
              hint: "merge() must not change the base layer (another adapter may still use it): assign into a new Linear.",
            });
            const expected = base.weight.add(adapter.delta());
            const forgotScale = allClose(merged.weight, base.weight.add(tf.matMul(adapter.A, adapter.B)));
            expectClose(merged.weight, expected, "the merged weight", {
              hint: forgotScale ? "The merged weight is W + (α/r)·A·B: the scale α/r is missing." : undefined,
            });
            if (base.bias) {
              expectClose(merged.bias, base.bias, "the merged bias", {
                hint: "LoRA does not change the bias: copy the base layer's bias into the merged layer.",
              });
            } else if (merged.bias) {
              fail(
                "the base layer has no bias, but the merged layer has one.",
                "new Linear(in, out, { bias: this.base.bias !== undefined }).",
              );
            }
            const x = randomInput(random, base.inFeatures);
            expectClose(merged.forward(x), lora.forward(x), "the merged layer's output vs the LoRA layer's");
          } finally {
            disposeAll(merged);
          }
        });
      },
    },
  ],
});
