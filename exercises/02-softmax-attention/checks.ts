/**
 * Checks for 02-softmax-attention: softmax against tf.softmax, attention against gpt-course's
 * `scaledDotProductAttention`, on random shapes (with batch axes, Tq ≠ Tk, d_k ≠ d_v) and random values.
 * When the attention is wrong, common mistakes (no scaling, dividing by d_k) are recognised and named.
 */
import { type Random, scaledDotProductAttention, tf } from "gpt-course";
import {
  allClose,
  type Conforms,
  defineExercise,
  expectClose,
  expectTensor,
  fail,
  randomInt,
  randomTensor,
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** Random q, k, v with 0–2 batch axes, and Tq ≠ Tk, d_k ≠ d_v most of the time. */
function randomQKV(random: Random): { q: tf.Tensor; k: tf.Tensor; v: tf.Tensor } {
  const batch = Array.from({ length: random.int(3) }, () => randomInt(random, 1, 3));
  const [Tq, Tk, dk, dv] = [
    randomInt(random, 2, 7),
    randomInt(random, 2, 9),
    randomInt(random, 4, 16),
    randomInt(random, 2, 10),
  ];
  return {
    q: randomTensor(random, [...batch, Tq, dk]),
    k: randomTensor(random, [...batch, Tk, dk]),
    v: randomTensor(random, [...batch, Tk, dv]),
  };
}

/** Attention weights with a wrong scale, to recognise the usual mistakes. */
function weightsWithScale(q: tf.Tensor, k: tf.Tensor, scale: number): tf.Tensor {
  return tf.softmax(tf.matMul(q, k, false, true).mul(scale));
}

function diagnoseWeights(weights: tf.Tensor, q: tf.Tensor, k: tf.Tensor): string | undefined {
  const dk = q.shape[q.rank - 1] as number;
  if (allClose(weights, weightsWithScale(q, k, 1))) {
    return "Your weights are softmax(q·kᵀ) without the scaling: divide the scores by √d_k (d_k = q's last dimension).";
  }
  if (allClose(weights, weightsWithScale(q, k, 1 / dk)))
    return "You divided the scores by d_k; divide by √d_k instead.";
  if (weights.rank >= 2 && allClose(weights, tf.softmax(tf.matMul(q, k, false, true).div(Math.sqrt(dk)).transpose()))) {
    return "The softmax ran over the wrong axis: each query's row (the last axis, over the keys) must sum to 1.";
  }
  return undefined;
}

export default defineExercise<Exports>({
  title: "Softmax and scaled dot-product attention",
  teaches: "softmax (and why it subtracts the max), softmax(QKᵀ/√d_k)·V with batched matMul",
  checks: [
    {
      name: "softmax matches tf.softmax along the last axis",
      hint: "exp(x) / sum(exp(x)) over axis -1 with keepDims = true, so the sums broadcast back over each row.",
      run({ softmax }, random) {
        const shape = Array.from({ length: randomInt(random, 1, 3) }, () => randomInt(random, 2, 7));
        const x = randomTensor(random, shape, 3);
        const result = expectTensor(softmax(x), "softmax(x)");
        if (x.rank >= 2 && allClose(result, tf.softmax(x.transpose()).transpose())) {
          fail("your softmax normalises the wrong axis.", "Sum over the last axis: x.sum(-1, true).");
        }
        expectClose(result, tf.softmax(x), `softmax of a [${shape}] tensor`);
      },
    },
    {
      name: "softmax stays finite for large inputs (no exp overflow)",
      hint:
        "exp(100) is Infinity in float32, and Infinity / Infinity is NaN. Subtract each row's maximum first: " +
        "x.sub(x.max(-1, true)); softmax(x − c) = softmax(x), and now every exponent is ≤ 0.",
      run({ softmax }, random) {
        const x = randomTensor(random, [randomInt(random, 2, 5), randomInt(random, 3, 8)], 50, 200);
        expectClose(softmax(x), tf.softmax(x), "softmax of scores around 200");
      },
    },
    {
      name: "the attention weights match gpt-course's",
      hint: "weights = softmax(q·kᵀ / √d_k): tf.matMul(q, k, false, true) gives q·kᵀ for every batch entry at once.",
      run({ attention }, random) {
        const { q, k, v } = randomQKV(random);
        const expected = scaledDotProductAttention(q, k, v).weights;
        const weights = expectTensor(attention(q, k, v).weights, "attention(q, k, v).weights");
        const hint = weights.shape.join() === expected.shape.join() ? diagnoseWeights(weights, q, k) : undefined;
        expectClose(weights, expected, `the weights for q [${q.shape}], k [${k.shape}]`, { hint });
      },
    },
    {
      name: "the attention output matches gpt-course's",
      hint: "output = weights · v: one weighted average of the value vectors per query.",
      run({ attention }, random) {
        const { q, k, v } = randomQKV(random);
        const expected = scaledDotProductAttention(q, k, v).output;
        expectClose(
          attention(q, k, v).output,
          expected,
          `the output for q [${q.shape}], k [${k.shape}], v [${v.shape}]`,
        );
      },
    },
  ],
});
