/**
 * Checks for 02-causal-mask: the mask against gpt-course's `causalMask` (square, and with cached keys), masked
 * attention against `scaledDotProductAttention` with `causal` and with a random padding mask, and the property
 * the mask exists for: changing the future never changes the past.
 */
import { causalMask as libCausalMask, type Random, scaledDotProductAttention, tf } from "gpt-course";
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

function randomQKV(random: Random, Tq: number, Tk: number): { q: tf.Tensor; k: tf.Tensor; v: tf.Tensor } {
  const B = randomInt(random, 1, 3);
  const [dk, dv] = [randomInt(random, 4, 12), randomInt(random, 2, 8)];
  return {
    q: randomTensor(random, [B, Tq, dk]),
    k: randomTensor(random, [B, Tk, dk]),
    v: randomTensor(random, [B, Tk, dv]),
  };
}

/** Attention computed the common wrong ways, to name the mistake. */
function diagnoseMasked(weights: tf.Tensor, q: tf.Tensor, k: tf.Tensor, mask: tf.Tensor): string | undefined {
  const scores = tf.matMul(q, k, false, true).div(Math.sqrt(q.shape[q.rank - 1] as number));
  if (allClose(weights, tf.softmax(scores.add(mask.mul(-1e9))))) {
    return 'Your mask is upside down: 1 means "may attend" and 0 "masked", so add MASKED_SCORE where the mask is 0.';
  }
  if (allClose(weights, tf.softmax(scores).mul(mask))) {
    return "Masking after the softmax leaves rows that no longer sum to 1. Mask the scores before the softmax.";
  }
  if (allClose(weights, tf.softmax(scores.mul(mask)))) {
    return "Multiplying the scores by the mask sets them to 0, and exp(0) = 1 is not a zero weight. Add a large negative number instead.";
  }
  return undefined;
}

export default defineExercise<Exports>({
  title: "The causal mask",
  teaches: "why a decoder masks the future, the mask's offset with cached keys, masking scores before the softmax",
  checks: [
    {
      name: "causalMask(T, T) is the lower-triangular matrix of ones",
      hint: "Row i (a query) has ones in columns 0..i: key j is allowed when j ≤ i. Return a float tensor of shape [T, T].",
      run({ causalMask }, random) {
        const T = randomInt(random, 2, 9);
        expectClose(causalMask(T, T), libCausalMask(T, T), `causalMask(${T}, ${T})`, { atol: 0, rtol: 0 });
      },
    },
    {
      name: "causalMask(Tq, Tk) with Tq < Tk lets the queries see the cached keys",
      hint:
        "With Tk − Tq cached positions, query i is position i + (Tk − Tq) of the sequence: it may see keys " +
        "j ≤ i + (Tk − Tq). During generation Tq = 1, and the new token must see every key.",
      run({ causalMask }, random) {
        const Tq = randomInt(random, 1, 5);
        const Tk = Tq + randomInt(random, 1, 6);
        const mask = expectTensor(causalMask(Tq, Tk), `causalMask(${Tq}, ${Tk})`);
        const noOffset = tf.linalg.bandPart(tf.ones([Tq, Tk]), -1, 0);
        const hint = allClose(mask, noOffset, 0, 0)
          ? "Your mask ignores the offset: the Tq queries are the last Tq positions, not the first."
          : undefined;
        expectClose(mask, libCausalMask(Tq, Tk), `causalMask(${Tq}, ${Tk})`, { atol: 0, rtol: 0, hint });
      },
    },
    {
      name: "maskedAttention with a causal mask matches gpt-course's causal attention",
      hint: "scores = q·kᵀ/√d_k, then scores + (1 − mask)·MASKED_SCORE, then softmax over the last axis, then · v.",
      run({ maskedAttention }, random) {
        const Tk = randomInt(random, 2, 8);
        const Tq = random.next() < 0.5 ? Tk : randomInt(random, 1, Tk);
        const { q, k, v } = randomQKV(random, Tq, Tk);
        const mask = libCausalMask(Tq, Tk);
        const expected = scaledDotProductAttention(q, k, v, { causal: true });
        const { output, weights } = maskedAttention(q, k, v, mask);
        const w = expectTensor(weights, "maskedAttention(...).weights");
        const hint = w.shape.join() === expected.weights.shape.join() ? diagnoseMasked(w, q, k, mask) : undefined;
        expectClose(w, expected.weights, "the attention weights", { hint });
        expectClose(output, expected.output, "the output");
      },
    },
    {
      name: "maskedAttention applies a padding mask that broadcasts over the queries",
      hint:
        "The mask has shape [B, 1, Tk] here (one row per sequence, shared by all its queries): arithmetic with the " +
        "scores [B, Tq, Tk] broadcasts it. Do not reshape or index it by hand.",
      run({ maskedAttention }, random) {
        const [Tq, Tk] = [randomInt(random, 2, 6), randomInt(random, 3, 8)];
        const { q, k, v } = randomQKV(random, Tq, Tk);
        const B = q.shape[0] as number;
        // Random keys are padding (0); key 0 always stays visible, so no row is masked entirely.
        const rows = Array.from({ length: B }, () =>
          Array.from({ length: Tk }, (_, j) => (j === 0 || random.next() < 0.6 ? 1 : 0)),
        );
        const mask = tf.tensor3d(
          rows.map((row) => [row]),
          [B, 1, Tk],
        );
        const expected = scaledDotProductAttention(q, k, v, { mask });
        const { output, weights } = maskedAttention(q, k, v, mask);
        const w = expectTensor(weights, "maskedAttention(...).weights");
        const hint = w.shape.join() === expected.weights.shape.join() ? diagnoseMasked(w, q, k, mask) : undefined;
        expectClose(w, expected.weights, "the attention weights", { hint });
        expectClose(output, expected.output, "the output");
      },
    },
    {
      name: "with your causal mask, changing later tokens never changes earlier outputs",
      hint:
        "This is what the mask is for: during training every position predicts its next token, and it must not " +
        "peek at it. Check causalMask first, then that maskedAttention gives masked scores zero weight.",
      run({ causalMask, maskedAttention }, random) {
        const T = randomInt(random, 3, 8);
        const t = randomInt(random, 0, T - 2); // positions 0..t stay, t+1.. change
        const { q, k, v } = randomQKV(random, T, T);
        const [B, , dk] = k.shape as [number, number, number];
        const keep = tf.concat([tf.ones([B, t + 1, 1]), tf.zeros([B, T - t - 1, 1])], 1);
        const change = (x: tf.Tensor, d: number): tf.Tensor =>
          x.mul(keep).add(randomTensor(random, [B, T, d]).mul(tf.sub(1, keep)));
        const mask = causalMask(T, T);
        const before = expectTensor(maskedAttention(q, k, v, mask).output, "the output").slice(
          [0, 0, 0],
          [B, t + 1, -1],
        );
        const after = expectTensor(
          maskedAttention(q, change(k, dk), change(v, v.shape[2] as number), mask).output,
          "the output",
        );
        if (!allClose(after.slice([0, 0, 0], [B, t + 1, -1]), before)) {
          fail(
            `changing the keys and values of positions ${t + 1}..${T - 1} changed the outputs of positions 0..${t}: the future leaks.`,
          );
        }
      },
    },
  ],
});
