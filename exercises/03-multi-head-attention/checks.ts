/**
 * Checks for 03-multi-head-attention: splitting and merging heads against a direct reshape and transpose,
 * and the whole layer against gpt-course's `MultiHeadAttention` module with random weights (biases included),
 * with and without the causal mask.
 */
import { MultiHeadAttention, Random, type tf } from "gpt-course";
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

/** Random (B, T, C) and a number of heads that divides C. */
function randomShape(random: Random): { B: number; T: number; C: number; numHeads: number } {
  const numHeads = randomChoice(random, [2, 3, 4]);
  return { B: randomInt(random, 1, 3), T: randomInt(random, 2, 7), C: numHeads * randomInt(random, 2, 5), numHeads };
}

/** gpt-course's layer with random weights and biases (not the small init, so every mistake shows). */
function referenceLayer(random: Random, C: number, numHeads: number, causal: boolean): MultiHeadAttention {
  const config = {
    embeddingDim: C,
    numHeads,
    dropout: 0,
    bias: true,
    causal,
    crossAttention: false,
    initStd: 0.02,
    residualInitStd: 0.02,
  };
  const layer = new MultiHeadAttention(config, new Random(random.seed()));
  for (const parameter of layer.parameters()) parameter.assign(randomTensor(random, parameter.shape, 0.4));
  return layer;
}

const SPLIT_HINT =
  "Reshaping (B, T, C) straight to (B, nh, T, hs) mixes up positions and channels. Reshape to (B, T, nh, hs) " +
  "first (each position's channels regrouped per head), then transpose([0, 2, 1, 3]).";

async function checkLayer({ multiHeadSelfAttention }: Exports, random: Random, causal: boolean): Promise<void> {
  const { B, T, C, numHeads } = randomShape(random);
  const layer = referenceLayer(random, C, numHeads, causal);
  try {
    const x = randomTensor(random, [B, T, C]);
    const params = {
      c_attn: { weight: layer.c_attn.weight, bias: layer.c_attn.bias as tf.Tensor },
      c_proj: { weight: layer.c_proj.weight, bias: layer.c_proj.bias as tf.Tensor },
    };
    const what = `multiHeadSelfAttention(x [${x.shape}], params, ${numHeads} heads, causal = ${causal})`;
    expectClose(multiHeadSelfAttention(x, params, numHeads, causal), layer.forward(x), what);
  } finally {
    layer.dispose();
  }
}

export default defineExercise<Exports>({
  title: "A multi-head attention layer",
  teaches: "splitting channels into heads (reshape + transpose), batched attention over heads, the output projection",
  checks: [
    {
      name: "splitHeads turns (B, T, C) into (B, nh, T, hs)",
      hint: SPLIT_HINT,
      run({ splitHeads }, random) {
        const { B, T, C, numHeads } = randomShape(random);
        const x = randomTensor(random, [B, T, C]);
        const expected = x.reshape([B, T, numHeads, C / numHeads]).transpose([0, 2, 1, 3]);
        const result = expectTensor(splitHeads(x, numHeads), `splitHeads(x [${x.shape}], ${numHeads})`);
        const hint = allClose(result, x.reshape([B, numHeads, T, C / numHeads])) ? SPLIT_HINT : undefined;
        expectClose(result, expected, `splitHeads(x [${x.shape}], ${numHeads})`, { hint, atol: 0, rtol: 0 });
      },
    },
    {
      name: "mergeHeads turns (B, nh, T, hs) back into (B, T, C)",
      hint: "Undo splitHeads in reverse order: transpose([0, 2, 1, 3]) to (B, T, nh, hs), then reshape to (B, T, nh·hs).",
      run({ mergeHeads }, random) {
        const { B, T, C, numHeads } = randomShape(random);
        const heads = randomTensor(random, [B, numHeads, T, C / numHeads]);
        const expected = heads.transpose([0, 2, 1, 3]).reshape([B, T, C]);
        const result = expectTensor(mergeHeads(heads), `mergeHeads(x [${heads.shape}])`);
        const hint = allClose(result, heads.reshape([B, T, C]))
          ? "Reshaping (B, nh, T, hs) straight to (B, T, C) puts the wrong numbers together: transpose back first."
          : undefined;
        expectClose(result, expected, `mergeHeads(x [${heads.shape}])`, { hint, atol: 0, rtol: 0 });
      },
    },
    {
      name: "the layer matches gpt-course's MultiHeadAttention (bidirectional, as in an encoder)",
      hint:
        "q, k, v = split(linear(x, c_attn), 3, -1); split each into heads; scaledDotProductAttention(q, k, v, " +
        "{ causal }); merge the heads; linear(..., c_proj). Check splitHeads and mergeHeads first.",
      run: (exports, random) => checkLayer(exports, random, false),
    },
    {
      name: "the layer matches gpt-course's MultiHeadAttention with the causal mask (as in GPT)",
      hint: "Pass `causal` on to scaledDotProductAttention: { causal } masks every later position in every head.",
      run: (exports, random) => checkLayer(exports, random, true),
    },
  ],
});
