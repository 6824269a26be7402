/**
 * Checks for 04-gpt-block: the learner's modules must have GPT-2's parameter names and shapes (so weights load
 * by name), and with gpt-course's random weights copied in by name they must compute what gpt-course's `MLP`
 * and `DecoderBlock` compute. A last check tests causality directly: later tokens never change earlier outputs.
 */
import { type BlockConfig, DecoderBlock, MLP as LibMLP, type Module, Random, tf } from "gpt-course";
import {
  allClose,
  type Conforms,
  copyParameters,
  defineExercise,
  expectClose,
  expectSameParameters,
  expectTensor,
  fail,
  randomChoice,
  randomInt,
  randomTensor,
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

function randomSettings(random: Random): { embeddingDim: number; numHeads: number } {
  const numHeads = randomChoice(random, [1, 2, 4]);
  return { embeddingDim: numHeads * randomInt(random, 2, 6), numHeads };
}

function blockConfig(settings: { embeddingDim: number; numHeads: number }, preNorm = true): BlockConfig {
  return {
    ...settings,
    dropout: 0,
    bias: true,
    layerNormEpsilon: 1e-5,
    activation: "gelu_tanh",
    preNorm,
    initStd: 0.02,
    residualInitStd: 0.02,
  };
}

/** Random values for every parameter (LayerNorm weights around 1), so that every wiring mistake shows. */
function randomise(module: Module, random: Random): void {
  for (const [name, parameter] of module.namedParameters()) {
    const isNormWeight = /ln_\d\.weight$/.test(name);
    parameter.assign(randomTensor(random, parameter.shape, isNormWeight ? 0.2 : 0.3, isNormWeight ? 1 : 0));
  }
}

export default defineExercise<Exports>({
  title: "A GPT block",
  teaches: "modules and GPT-2 parameter names, the MLP, pre-LN residual connections, causality of a whole block",
  checks: [
    {
      name: "MLP registers c_fc (C → 4C) and c_proj (4C → C) with GPT-2's names",
      hint: 'this.c_fc = this.addModule("c_fc", new Linear(C, 4 * C, { seed: random.seed() })), and likewise c_proj.',
      run({ MLP }, random) {
        const settings = randomSettings(random);
        const reference = new LibMLP(blockConfig(settings), new Random(1));
        const mine = new MLP(settings.embeddingDim, new Random(random.seed()));
        try {
          expectSameParameters(mine, reference, "your MLP", "GPT-2");
        } finally {
          mine.dispose();
          reference.dispose();
        }
      },
    },
    {
      name: "MLP.forward matches gpt-course's MLP",
      hint: "c_proj(geluTanh(c_fc(x))): GPT-2 uses the tanh approximation of GELU, geluTanh from gpt-course.",
      run({ MLP }, random) {
        const settings = randomSettings(random);
        const reference = new LibMLP(blockConfig(settings), new Random(random.seed()));
        const mine = new MLP(settings.embeddingDim, new Random(random.seed()));
        try {
          randomise(reference, random);
          copyParameters(reference, mine, "GPT-2's block");
          const x = randomTensor(random, [randomInt(random, 1, 3), randomInt(random, 2, 6), settings.embeddingDim]);
          expectClose(mine.forward(x), reference.forward(x), `MLP.forward(x [${x.shape}])`);
        } finally {
          mine.dispose();
          reference.dispose();
        }
      },
    },
    {
      name: "Block registers ln_1, attn, ln_2 and mlp with GPT-2's parameter names and shapes",
      hint:
        'Register with this.addModule: "ln_1" = new LayerNorm(C), "attn" = new MultiHeadAttention(attentionConfig(settings), ' +
        'random), "ln_2" = new LayerNorm(C), "mlp" = new MLP(C, random). The names become "attn.c_attn.weight" etc.',
      run({ Block }, random) {
        const settings = randomSettings(random);
        const reference = new DecoderBlock(blockConfig(settings), new Random(1));
        const mine = new Block(settings, new Random(random.seed()));
        try {
          expectSameParameters(mine, reference, "your Block", "GPT-2");
        } finally {
          mine.dispose();
          reference.dispose();
        }
      },
    },
    {
      name: "Block.forward matches gpt-course's DecoderBlock (pre-LN, as in GPT-2)",
      hint:
        "Two residual steps: x = x + attn.forward(ln_1.forward(x)); then x = x + mlp.forward(ln_2.forward(x)). " +
        "The LayerNorm is applied to each sub-layer's input; the residual stream x itself is never normalised.",
      run({ Block }, random) {
        const settings = randomSettings(random);
        const reference = new DecoderBlock(blockConfig(settings), new Random(random.seed()));
        const postNorm = new DecoderBlock(blockConfig(settings, false), new Random(1));
        const mine = new Block(settings, new Random(random.seed()));
        try {
          randomise(reference, random);
          copyParameters(reference, mine, "GPT-2's block");
          copyParameters(reference, postNorm, "GPT-2's block");
          const x = randomTensor(random, [randomInt(random, 1, 3), randomInt(random, 2, 6), settings.embeddingDim]);
          const result = expectTensor(mine.forward(x), `Block.forward(x [${x.shape}])`);
          const hint =
            result.shape.join() === x.shape.join() && allClose(result, postNorm.forward(x))
              ? "This is a post-LN block, LN(x + f(x)) as in the original Transformer. GPT-2 is pre-LN: x + f(LN(x))."
              : undefined;
          expectClose(result, reference.forward(x), `Block.forward(x [${x.shape}])`, { hint });
        } finally {
          mine.dispose();
          reference.dispose();
          postNorm.dispose();
        }
      },
    },
    {
      name: "a Block never lets later tokens change earlier outputs",
      hint:
        "The attention layer is causal (attentionConfig sets causal: true), and LayerNorm and the MLP work on each " +
        "position alone: nothing in the block should mix positions except attn.",
      run({ Block }, random) {
        const settings = randomSettings(random);
        const block = new Block(settings, new Random(random.seed()));
        try {
          randomise(block, random);
          const [B, T, C] = [randomInt(random, 1, 2), randomInt(random, 3, 7), settings.embeddingDim];
          const t = randomInt(random, 0, T - 2);
          const x = randomTensor(random, [B, T, C]);
          const changed = tf.concat([x.slice([0, 0, 0], [B, t + 1, C]), randomTensor(random, [B, T - t - 1, C])], 1);
          const early = (y: unknown): tf.Tensor => expectTensor(y, "Block.forward(x)").slice([0, 0, 0], [B, t + 1, C]);
          if (!allClose(early(block.forward(x)), early(block.forward(changed)))) {
            fail(
              `changing the tokens at positions ${t + 1}..${T - 1} changed the block's outputs at positions 0..${t}.`,
            );
          }
        } finally {
          block.dispose();
        }
      },
    },
  ],
});
