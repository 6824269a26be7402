/**
 * Checks for 04-gpt-forward: the parameter count against gpt-course's `countParameters` on random configs (biases
 * on and off, tied and untied head), against the parameters a random GPT really holds and against GPT-2's
 * published sizes; the embeddings, the output head and the whole forward pass against gpt-course's `GPT` with
 * random weights. Forgotten pieces (LayerNorms, ln_f, positions, the head's transpose) are recognised and named.
 */
import { countParameters as libCountParameters, GPT, type GPTConfig, gptConfig, type Random, tf } from "gpt-course";
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
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** A random config, from tiny to GPT-2-like sizes (never built: only counted). */
function randomConfig(random: Random, bias: boolean, tieWeights: boolean): GPTConfig {
  const numHeads = randomChoice(random, [1, 2, 4, 8, 12]);
  return gptConfig({
    vocabSize: randomInt(random, 10, 60_000),
    contextLength: randomInt(random, 8, 2048),
    numLayers: randomInt(random, 1, 48),
    numHeads,
    embeddingDim: numHeads * randomInt(random, 4, 96),
    bias,
    tieWeights,
  });
}

/** The count with one typical mistake, and the hint that names it. */
function countingMistakes(config: GPTConfig): Array<[number, string]> {
  const { vocabSize: V, contextLength: T, numLayers: L, embeddingDim: C, bias, tieWeights } = config;
  const right = libCountParameters(config);
  const mistakes: Array<[number, string]> = [
    [right - L * 4 * C, "Each block has two LayerNorms (ln_1, ln_2), with γ and β of C numbers each: 4C per block."],
    [right - 2 * C, "The final LayerNorm ln_f (γ and β: 2C) is missing."],
    [right - T * C, "The position embedding wpe (contextLength × C) is missing."],
    [right - V * C, "The token embedding wte (V × C) is missing."],
  ];
  if (tieWeights)
    mistakes.push([right + V * C, "With tied weights the output head reuses wte: it has no parameters of its own."]);
  else mistakes.push([right - V * C, "With tieWeights false, lm_head has its own (C, V) weight: add V·C (no bias)."]);
  if (bias) {
    mistakes.push([
      right - L * 3 * C,
      "c_fc's bias has 4C entries (one per output), not C: a block's biases add up to 3C + C + 4C + C = 9C.",
    ]);
    mistakes.push([right - L * 9 * C, "The Linear layers have biases (config.bias is true): 9C per block."]);
  } else {
    mistakes.push([right + L * 9 * C, "config.bias is false: the Linear layers have no biases."]);
    mistakes.push([
      right - L * 2 * C - C,
      "config.bias only concerns the Linear layers: a LayerNorm always has its β (and γ).",
    ]);
  }
  return mistakes;
}

/** Fails unless the learner's count for `config` is `expected`; `source` says where the expected number comes from. */
function expectCount({ countParameters }: Exports, config: GPTConfig, expected: number, source: string): void {
  const yours = countParameters({ ...config });
  if (yours !== expected) {
    const hint = countingMistakes(config).find(([count]) => count === yours)?.[1];
    const shown = typeof yours === "number" ? yours.toLocaleString("en-US") : String(yours);
    fail(
      `countParameters(${describeConfig(config)}) is ${shown}; ${source} ${expected.toLocaleString("en-US")}.`,
      hint,
    );
  }
}

const describeConfig = ({
  vocabSize,
  contextLength,
  numLayers,
  numHeads,
  embeddingDim,
  bias,
  tieWeights,
}: GPTConfig): string =>
  `{ V ${vocabSize}, T ${contextLength}, L ${numLayers}, nh ${numHeads}, C ${embeddingDim}, bias ${bias}, tieWeights ${tieWeights} }`;

/** A small GPT with weights large enough that every mistake shows in the logits. */
function randomModel(random: Random, tieWeights = random.next() < 0.5): GPT {
  const numHeads = randomInt(random, 1, 2);
  return new GPT({
    vocabSize: randomInt(random, 20, 60),
    contextLength: randomInt(random, 8, 16),
    numLayers: randomInt(random, 1, 3),
    numHeads,
    embeddingDim: numHeads * randomInt(random, 4, 8),
    bias: random.next() < 0.7,
    tieWeights,
    initStd: 0.3,
    seed: random.seed(),
  });
}

/** Random ids (B, T) with T shorter than the context, so that using the whole position table shows. */
function randomIds(random: Random, model: GPT): tf.Tensor2D {
  const [B, T] = [randomInt(random, 1, 3), randomInt(random, 2, model.config.contextLength - 1)];
  const ids = Array.from({ length: B * T }, () => random.int(model.config.vocabSize));
  return tf.tensor2d(ids, [B, T], "int32");
}

function withModel(model: GPT, f: (model: GPT) => void): void {
  try {
    f(model);
  } finally {
    model.dispose();
  }
}

const POSITIONS_HINT =
  'Position t (counting from 0) adds row t of wpe: gather the rows tf.range(0, T, 1, "int32") of model.wpe.weight ' +
  "(the table has contextLength rows; use only the first T).";

export default defineExercise<Exports>({
  title: "The GPT forward pass",
  teaches:
    "the parameter count from a config, token and position embeddings, the tied output head, the forward pass end to end",
  checks: [
    {
      name: "countParameters matches gpt-course's countParameters on random configs (biases on/off, tied/untied)",
      hint:
        "N = VC + TC + L·(12C² + 9C·[bias] + 4C) + 2C, plus VC when the head is not tied. Write it piece by piece: " +
        "wte, wpe, per block ln_1, c_attn, c_proj, ln_2, c_fc, c_proj, then ln_f and lm_head.",
      run(exports, random) {
        for (const bias of [true, false]) {
          for (const tieWeights of [true, false]) {
            const config = randomConfig(random, bias, tieWeights);
            expectCount(exports, config, libCountParameters(config), "gpt-course counts");
          }
        }
      },
    },
    {
      name: "countParameters equals what a random GPT really holds, and GPT-2 small's 124,439,808",
      hint:
        "model.namedParameters() lists every parameter with its shape: compare your formula with it piece by piece " +
        "(the notebook's section 2 groups them by layer).",
      run(exports, random) {
        withModel(randomModel(random), (model) => {
          expectCount(exports, model.config, model.numParameters(), "a GPT built with this config holds");
        });
        for (const preset of ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"] as const) {
          const config = gptConfig({ preset });
          expectCount(exports, config, libCountParameters(config), `${preset} has`);
        }
      },
    },
    {
      name: "embed adds token embeddings (wte) and position embeddings (wpe)",
      hint: `tf.gather(model.wte.weight, ids) gives (B, T, C); add the position rows (T, C), which broadcast over the batch. ${POSITIONS_HINT}`,
      run({ embed }, random) {
        withModel(randomModel(random), (model) => {
          const ids = randomIds(random, model);
          const T = ids.shape[1];
          const what = `embed(model, ids [${ids.shape}])`;
          const result = expectTensor(embed(model, ids), what);
          const tokens = model.wte.forward(ids);
          const C = model.config.embeddingDim;
          let hint: string | undefined;
          if (result.shape[2] === 2 * C)
            hint = "Add the position embeddings to the token embeddings; do not concatenate them.";
          expectShape(result, tokens.shape, what, hint);
          if (allClose(result, tokens))
            hint = "The position embeddings are missing: without them attention cannot tell the order of the tokens.";
          else if (allClose(result, tokens.add(model.wpe.forward(tf.range(1, T + 1, 1, "int32")))))
            hint = `Off by one: positions count from 0. ${POSITIONS_HINT}`;
          expectClose(result, tokens.add(model.wpe.forward(tf.range(0, T, 1, "int32"))), what, { hint });
        });
      },
    },
    {
      name: "outputHead is x · wteᵀ for a tied model and lm_head for an untied one",
      hint:
        "Tied: tf.matMul(x2d, model.wte.weight, false, true), (B·T, C) · (C, V); a tied model has no lm_head. " +
        "Untied: tf.matMul(x2d, model.lm_head.weight), whose weight is already (C, V). Reshape to (B, T, V).",
      run({ outputHead }, random) {
        for (const tieWeights of [true, false]) {
          withModel(randomModel(random, tieWeights), (model) => {
            const [B, T, C] = [randomInt(random, 1, 3), randomInt(random, 2, 6), model.config.embeddingDim];
            const x = tf.randomNormal([B, T, C], 0, 1, "float32", random.seed());
            const what = `outputHead(${tieWeights ? "tied" : "untied"} model, x [${x.shape}])`;
            const result = expectTensor(outputHead(model, x), what);
            expectShape(result, [B, T, model.config.vocabSize], what, "One logit per vocabulary entry: (B, T, V).");
            let hint: string | undefined;
            if (!tieWeights) {
              const usedWte = tf
                .matMul(x.reshape([B * T, C]) as tf.Tensor2D, model.wte.weight as tf.Tensor2D, false, true)
                .reshape([B, T, -1]);
              if (allClose(result, usedWte))
                hint = "This model is not tied (config.tieWeights is false): use its own lm_head, not wte.";
            }
            expectClose(result, model.head(x), what, { hint });
          });
        }
      },
    },
    {
      name: "gptForward gives the logits of model.forward (random GPTs, tied and untied)",
      hint:
        "embed(model, ids), then x = block.forward(x) for every block of model.h in order, then model.ln_f.forward(x), " +
        "then outputHead. If embed or outputHead fail their own checks, fix them first.",
      run({ gptForward }, random) {
        for (const tieWeights of [true, false]) {
          withModel(randomModel(random, tieWeights), (model) => {
            const ids = randomIds(random, model);
            const what = `gptForward(model, ids [${ids.shape}])`;
            const result = expectTensor(gptForward(model, ids), what);
            expectShape(result, [...ids.shape, model.config.vocabSize], what);
            const expected = model.forward(ids);
            let hint: string | undefined;
            if (!allClose(result, expected, 1e-3, 1e-3)) {
              const T = ids.shape[1];
              let x = model.wte.forward(ids).add(model.wpe.forward(tf.range(0, T, 1, "int32")));
              for (const block of model.h) x = block.forward(x);
              if (allClose(result, model.head(x), 1e-3, 1e-3))
                hint = "The final LayerNorm is missing: model.ln_f.forward(x) after the last block, before the head.";
            }
            expectClose(result, expected, what, { hint, atol: 1e-3, rtol: 1e-3 });
          });
        }
      },
    },
  ],
});
