/**
 * Checks for 08-gpt2-weights: a random GPT (tied or untied output layer) is "saved" the way Hugging Face stores
 * GPT-2 (optional "transformer." prefix, causal-mask buffers, lm_head as a torch nn.Linear); the learner's loader
 * must rebuild every parameter exactly, and the loaded model must compute the same logits.
 */
import { GPT, type GPTConfig, type Random, tf } from "gpt-course";
import { type Conforms, defineExercise, expectClose, expectThrows, fail, randomInt } from "../harness/check.js";
import type { StoredTensor } from "./solution.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** A small random GPT with healthy weights; `seed` picks the weights, `random` the shape. */
function randomConfig(random: Random, tieWeights: boolean): Partial<GPTConfig> {
  const numHeads = randomInt(random, 1, 2);
  return {
    vocabSize: randomInt(random, 20, 40),
    contextLength: randomInt(random, 8, 16),
    numLayers: randomInt(random, 1, 2),
    numHeads,
    embeddingDim: 8 * numHeads,
    tieWeights,
    initStd: 0.3,
  };
}

const randomModel = (random: Random, tieWeights: boolean): GPT =>
  new GPT({ ...randomConfig(random, tieWeights), seed: random.seed() });

/** The model's weights as a Hugging Face GPT-2 checkpoint would hold them. */
function checkpointOf(model: GPT, random: Random): Map<string, StoredTensor> {
  const prefix = random.next() < 0.5 ? "transformer." : "";
  const tensors = new Map<string, StoredTensor>();
  for (const [name, variable] of model.namedParameters()) {
    if (name === "lm_head.weight") {
      // torch's nn.Linear stores (out, in) = (V, C), and GPT2LMHeadModel keeps lm_head outside "transformer."
      const transposed = tf.tidy(() => variable.transpose());
      tensors.set(name, { shape: transposed.shape, data: transposed.dataSync() as Float32Array });
    } else {
      tensors.set(prefix + name, { shape: [...variable.shape], data: variable.dataSync() as Float32Array });
    }
  }
  const T = model.config.contextLength;
  const mask = tf.tidy(() => tf.linalg.bandPart(tf.ones([T, T]), -1, 0).dataSync() as Float32Array);
  for (let i = 0; i < model.config.numLayers; i++) {
    tensors.set(`${prefix}h.${i}.attn.bias`, { shape: [1, 1, T, T], data: mask });
    if (random.next() < 0.5)
      tensors.set(`${prefix}h.${i}.attn.masked_bias`, { shape: [], data: Float32Array.of(-1e4) });
  }
  // Files list tensors in no particular order.
  return new Map(random.shuffle([...tensors]));
}

/** Loads a random model's checkpoint into a differently initialised one and compares them. */
function checkRoundTrip({ loadGPT2Weights }: Exports, random: Random, tieWeights: boolean): void {
  const config = randomConfig(random, tieWeights);
  const source = new GPT({ ...config, seed: random.seed() });
  const target = new GPT({ ...config, seed: random.seed() }); // same shape, different weights
  try {
    loadGPT2Weights(target, checkpointOf(source, random));
    const loaded = new Map(target.namedParameters());
    for (const [name, variable] of source.namedParameters()) {
      const hint =
        name === "lm_head.weight"
          ? "lm_head.weight is stored (V, C) by torch's nn.Linear; our Linear wants (C, V): transpose it."
          : "Every parameter keeps GPT-2's name (after dropping \"transformer.\") and needs no transpose: our Linear stores (in, out) like GPT-2's Conv1D.";
      expectClose(loaded.get(name), variable, `the loaded "${name}"`, { atol: 0, rtol: 0, hint });
    }
    const ids = tf.tensor2d([Array.from({ length: 5 }, () => random.int(source.config.vocabSize))], [1, 5], "int32");
    expectClose(target.forward(ids), source.forward(ids), "the loaded model's logits", { atol: 1e-4, rtol: 1e-4 });
  } finally {
    source.dispose();
    target.dispose();
  }
}

export default defineExercise<Exports>({
  title: "Loading GPT-2's weights",
  teaches:
    "checkpoint names vs parameter names, buffers that are not parameters, Conv1D (in, out) vs nn.Linear (out, in)",
  checks: [
    {
      name: 'parameterName drops the "transformer." prefix and keeps every parameter\'s name',
      hint: "name.replace(/^transformer\\./, \"\"): files saved from GPT2LMHeadModel prefix the body's names, GPT2Model's do not.",
      run({ parameterName }, random) {
        const model = randomModel(random, random.next() < 0.5);
        try {
          for (const [name] of model.namedParameters()) {
            for (const stored of [name, `transformer.${name}`]) {
              const result = parameterName(stored);
              if (result !== name)
                fail(
                  `parameterName(${JSON.stringify(stored)}) is ${JSON.stringify(result)}, expected ${JSON.stringify(name)}.`,
                );
            }
          }
        } finally {
          model.dispose();
        }
      },
    },
    {
      name: "parameterName skips the attn.bias and attn.masked_bias buffers (but not attn.c_attn.bias)",
      hint:
        'Return undefined only when the name ends in "attn.bias" or "attn.masked_bias" right after the block ' +
        'number (h.3.attn.bias). A test like name.endsWith(".bias") would also drop every real bias.',
      run({ parameterName }, random) {
        const layer = random.int(48);
        for (const prefix of ["", "transformer."]) {
          for (const buffer of [`h.${layer}.attn.bias`, `h.${layer}.attn.masked_bias`]) {
            const result = parameterName(prefix + buffer);
            if (result !== undefined)
              fail(
                `parameterName(${JSON.stringify(prefix + buffer)}) is ${JSON.stringify(result)}, expected undefined (a buffer).`,
              );
          }
          for (const parameter of [
            `h.${layer}.attn.c_attn.bias`,
            `h.${layer}.attn.c_proj.bias`,
            `h.${layer}.mlp.c_fc.bias`,
            `h.${layer}.ln_1.bias`,
          ]) {
            const result = parameterName(prefix + parameter);
            if (result !== parameter)
              fail(
                `parameterName(${JSON.stringify(prefix + parameter)}) is ${JSON.stringify(result)}, expected ${JSON.stringify(parameter)}.`,
              );
          }
        }
      },
    },
    {
      name: "loadGPT2Weights restores every parameter of a model with a tied output layer",
      hint:
        "For each [name, variable] of model.namedParameters(), find the checkpoint tensor whose parameterName is " +
        "name, and variable.assign(tf.tensor(data, shape)).",
      run: (exports, random) => checkRoundTrip(exports, random, true),
    },
    {
      name: "loadGPT2Weights transposes an untied lm_head (stored (V, C) by nn.Linear)",
      hint: "lm_head.weight is stored (V, C); our lm_head Linear holds (C, V): assign tensor.transpose().",
      run: (exports, random) => checkRoundTrip(exports, random, false),
    },
    {
      name: "loadGPT2Weights throws an error naming a parameter the checkpoint lacks",
      hint: "When no tensor matches a parameter, throw new Error(...) with the parameter's name, instead of leaving it random.",
      run({ loadGPT2Weights }, random) {
        const model = randomModel(random, true);
        try {
          const tensors = checkpointOf(model, random);
          const names = [...tensors.keys()].filter((n) => !/attn\.(masked_)?bias$/.test(n));
          const removed = names[random.int(names.length)] as string;
          tensors.delete(removed);
          const error = expectThrows(() => loadGPT2Weights(model, tensors), `loadGPT2Weights without "${removed}"`);
          const parameter = removed.replace(/^transformer\./, "");
          if (!error.message.includes(parameter))
            fail(`the error ${JSON.stringify(error.message)} should name the missing parameter "${parameter}".`);
        } finally {
          model.dispose();
        }
      },
    },
  ],
});
