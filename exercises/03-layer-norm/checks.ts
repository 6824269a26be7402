/**
 * Checks for 03-layer-norm: mean and variance against tf.moments, the normalisation against gpt-course's
 * `LayerNorm` module (with random γ and β copied into it), and the place of ε on inputs whose variance is
 * close to ε. Common mistakes (N − 1, ε outside the root) are recognised and named.
 */
import { LayerNorm, type Random, tf } from "gpt-course";
import {
  allClose,
  type Conforms,
  defineExercise,
  expectClose,
  expectTensor,
  randomChoice,
  randomInt,
  randomTensor,
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

function randomInput(random: Random, std = 2): tf.Tensor {
  const shape = [
    ...Array.from({ length: randomInt(random, 0, 2) }, () => randomInt(random, 1, 4)),
    randomInt(random, 3, 12),
  ];
  return randomTensor(random, shape, std, random.next() * 4 - 2);
}

/** gpt-course's LayerNorm with the given γ and β. */
function reference(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, epsilon: number): tf.Tensor {
  const norm = new LayerNorm(x.shape[x.rank - 1] as number, epsilon);
  try {
    norm.weight.assign(weight);
    norm.bias.assign(bias);
    return norm.forward(x);
  } finally {
    norm.dispose();
  }
}

function diagnoseNorm(
  result: tf.Tensor,
  x: tf.Tensor,
  weight: tf.Tensor,
  bias: tf.Tensor,
  epsilon: number,
): string | undefined {
  const n = x.shape[x.rank - 1] as number;
  const { mean, variance } = tf.moments(x, -1, true);
  const centred = x.sub(mean);
  const variants: Array<[tf.Tensor, string]> = [
    [
      centred.div(
        variance
          .mul(n / (n - 1))
          .add(epsilon)
          .sqrt(),
      ),
      "You divided by N − 1 (the unbiased variance); LayerNorm divides by N.",
    ],
    [centred.div(variance.sqrt().add(epsilon)), "ε belongs inside the square root: √(var + ε), not √var + ε."],
    [centred.div(variance.add(epsilon)), "Divide by the standard deviation √(var + ε), not by the variance."],
    [
      centred.div(variance.add(epsilon).sqrt()),
      "The normalisation is right, but γ (weight) and β (bias) are not applied: · weight + bias.",
    ],
  ];
  for (const [variant, hint] of variants) {
    const scaled = hint.includes("γ") ? variant : variant.mul(weight).add(bias);
    if (allClose(result, scaled)) return hint;
  }
  return undefined;
}

export default defineExercise<Exports>({
  title: "Layer normalisation",
  teaches: "mean and biased variance over the last axis, keepDims and broadcasting, where ε goes, γ and β",
  checks: [
    {
      name: "meanAndVariance matches tf.moments over the last axis",
      hint: "x.mean(-1, true), then x.sub(mean).square().mean(-1, true). keepDims = true keeps shapes like [B, T, 1].",
      run({ meanAndVariance }, random) {
        const x = randomInput(random);
        const { mean, variance } = meanAndVariance(x);
        const expected = tf.moments(x, -1, true);
        expectClose(mean, expected.mean, `the mean of a [${x.shape}] tensor`);
        const n = x.shape[x.rank - 1] as number;
        const v = expectTensor(variance, "the variance");
        const hint = allClose(v, expected.variance.mul(n / (n - 1)))
          ? "You divided by N − 1 (the unbiased estimate); LayerNorm uses the plain average, dividing by N."
          : undefined;
        expectClose(v, expected.variance, `the variance of a [${x.shape}] tensor`, { hint });
      },
    },
    {
      name: "layerNorm with γ = 1 and β = 0 matches gpt-course's LayerNorm",
      hint: "Each vector along the last axis becomes (x − mean) / √(var + ε): mean 0 and variance (almost) 1.",
      run({ layerNorm }, random) {
        const x = randomInput(random);
        const C = x.shape[x.rank - 1] as number;
        const [weight, bias] = [tf.ones([C]), tf.zeros([C])];
        const result = expectTensor(layerNorm(x, weight, bias), "layerNorm(x, ones, zeros)");
        const hint = result.shape.join() === x.shape.join() ? diagnoseNorm(result, x, weight, bias, 1e-5) : undefined;
        expectClose(result, reference(x, weight, bias, 1e-5), `layerNorm of a [${x.shape}] tensor`, { hint });
      },
    },
    {
      name: "layerNorm applies random γ (weight) and β (bias)",
      hint: "After normalising, multiply by weight and add bias; both have shape [C] and broadcast over the other axes.",
      run({ layerNorm }, random) {
        const x = randomInput(random);
        const C = x.shape[x.rank - 1] as number;
        const [weight, bias] = [randomTensor(random, [C], 0.5, 1), randomTensor(random, [C], 0.5)];
        const result = expectTensor(layerNorm(x, weight, bias), "layerNorm(x, weight, bias)");
        const hint = result.shape.join() === x.shape.join() ? diagnoseNorm(result, x, weight, bias, 1e-5) : undefined;
        expectClose(result, reference(x, weight, bias, 1e-5), "layerNorm with random weight and bias", { hint });
      },
    },
    {
      name: "epsilon is used, inside the square root, on nearly constant inputs",
      hint: "y = (x − mean) / √(var + ε): with a variance as small as ε, where ε goes changes the result a lot.",
      run({ layerNorm }, random) {
        const epsilon = randomChoice(random, [1e-5, 1e-4, 1e-3]);
        // A standard deviation of √ε: the variance and ε are of the same size.
        const x = randomInput(random, Math.sqrt(epsilon));
        const C = x.shape[x.rank - 1] as number;
        const [weight, bias] = [randomTensor(random, [C], 0.5, 1), randomTensor(random, [C], 0.5)];
        const result = expectTensor(layerNorm(x, weight, bias, epsilon), `layerNorm(x, weight, bias, ${epsilon})`);
        const hint =
          result.shape.join() === x.shape.join() ? diagnoseNorm(result, x, weight, bias, epsilon) : undefined;
        expectClose(
          result,
          reference(x, weight, bias, epsilon),
          `layerNorm with ε = ${epsilon} of a nearly constant input`,
          {
            hint,
            atol: 1e-3,
            rtol: 1e-3,
          },
        );
      },
    },
  ],
});
