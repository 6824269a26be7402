/**
 * Checks for 06-repetition-penalty. gpt-course has no penalty, so the checks compare with a short independent
 * computation (the rules as Hugging Face and OpenAI state them) on random logits, positive and negative, and random
 * histories with repeated tokens; greedy generation with a penalty is compared with gpt-course's `generate` when
 * the penalty is 1, and with an independent loop over gpt-course's `GPT.forward` otherwise. Common mistakes
 * (penalising per occurrence, dividing negative logits, frequency and presence mixed up, forgetting the prompt)
 * are recognised and named.
 */
import { argmax, generate, GPT, type Random, tf } from "gpt-course";
import { type Conforms, defineExercise, expectCloseArrays, fail, randomFloat, randomInt } from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** Random logits, about half of them negative. */
const randomLogits = (random: Random, V: number): number[] =>
  Array.from({ length: V }, () => randomFloat(random, -6, 6));

/** A history that repeats some tokens (a few favourite ids drawn often) and leaves others out. */
function randomHistory(random: Random, V: number): number[] {
  const favourites = Array.from({ length: randomInt(random, 1, 3) }, () => random.int(V));
  return Array.from({ length: randomInt(random, 3, 2 * V) }, () =>
    random.next() < 0.5 ? favourites[random.int(favourites.length)]! : random.int(V),
  );
}

function counts(history: readonly number[]): Map<number, number> {
  const result = new Map<number, number>();
  for (const token of history) result.set(token, (result.get(token) ?? 0) + 1);
  return result;
}

/** The CTRL rule, and variants with a typical mistake each. */
function repetitionPenalty(
  logits: readonly number[],
  history: readonly number[],
  penalty: number,
  mistake?: "per occurrence" | "always divide" | "always multiply" | "every token",
): number[] {
  const seen = counts(history);
  return logits.map((logit, token) => {
    const times =
      mistake === "every token" ? 1 : mistake === "per occurrence" ? (seen.get(token) ?? 0) : seen.has(token) ? 1 : 0;
    let value = logit;
    for (let i = 0; i < times; i++) {
      const divide = mistake === "always divide" || (mistake !== "always multiply" && value > 0);
      value = divide ? value / penalty : value * penalty;
    }
    return value;
  });
}

const REPETITION_MISTAKES: Array<[Parameters<typeof repetitionPenalty>[3], string]> = [
  [
    "per occurrence",
    "The penalty is applied once per token that occurs in the history, not once per occurrence: use new Set(history).",
  ],
  [
    "always divide",
    "Dividing a negative logit by the penalty moves it towards 0, which makes the token *more* likely. Negative logits are multiplied by the penalty.",
  ],
  [
    "always multiply",
    "Multiplying a positive logit by a penalty > 1 makes it larger, so the token *more* likely: positive logits are divided.",
  ],
  ["every token", "Only the tokens that occur in the history are penalised; the others keep their logits."],
];

function frequencyPresence(
  logits: readonly number[],
  history: readonly number[],
  frequency: number,
  presence: number,
): number[] {
  const seen = counts(history);
  return logits.map((logit, token) => logit - (seen.get(token) ?? 0) * frequency - (seen.has(token) ? presence : 0));
}

/** A small GPT with random weights of a healthy size, so its logits are far apart and greedy picks are clear. */
function randomModel(random: Random): GPT {
  const numHeads = randomInt(random, 1, 2);
  return new GPT({
    vocabSize: randomInt(random, 12, 30),
    contextLength: 32,
    numLayers: randomInt(random, 1, 2),
    numHeads,
    embeddingDim: 8 * numHeads,
    initStd: 0.5,
    seed: random.seed(),
  });
}

/** Greedy decoding with the penalty computed here, the history being `historyOf(ids, promptLength)`. */
function referenceGeneration(
  model: GPT,
  prompt: readonly number[],
  maxNewTokens: number,
  penalty: number,
  historyOf: (ids: number[], promptLength: number) => number[] = (ids) => ids,
  mistake?: Parameters<typeof repetitionPenalty>[3],
): number[] {
  const ids = [...prompt];
  for (let step = 0; step < maxNewTokens; step++) {
    const logits = tf.tidy(() => {
      const all = model.forward(tf.tensor2d([ids], [1, ids.length], "int32"));
      return Array.from(all.slice([0, ids.length - 1, 0], [1, 1, -1]).dataSync());
    });
    ids.push(argmax(repetitionPenalty(logits, historyOf(ids, prompt.length), penalty, mistake)));
  }
  return ids.slice(prompt.length);
}

/** Loose enough for logits computed in float32 (with tensors), far tighter than any mistake. */
const TOLERANCE = { atol: 1e-6, rtol: 1e-6 };

export default defineExercise<Exports>({
  title: "Repetition penalties",
  teaches:
    "the CTRL repetition penalty (divide positive logits, multiply negative ones), frequency and presence penalties, penalised greedy decoding",
  checks: [
    {
      name: "applyRepetitionPenalty divides positive logits and multiplies negative ones, of every token in the history",
      hint:
        "For each distinct token t of the history: logits[t] > 0 ? logits[t] / penalty : logits[t] * penalty. Tokens " +
        "that never occurred keep their logits.",
      run({ applyRepetitionPenalty }, random) {
        for (let trial = 0; trial < 6; trial++) {
          const V = randomInt(random, 5, 30);
          const logits = randomLogits(random, V);
          const history = randomHistory(random, V);
          const penalty = randomFloat(random, 1.1, 3);
          const result = applyRepetitionPenalty([...logits], [...history], penalty);
          const expected = repetitionPenalty(logits, history, penalty);
          const hint = Array.isArray(result)
            ? REPETITION_MISTAKES.find(([mistake]) => {
                const variant = repetitionPenalty(logits, history, penalty, mistake);
                return (
                  variant.join() !== expected.join() &&
                  variant.every((x, i) => Math.abs(x - (result[i] as number)) < 1e-5)
                );
              })?.[1]
            : undefined;
          expectCloseArrays(
            result,
            expected,
            `applyRepetitionPenalty(${V} logits, history [${history.join(", ")}], ${penalty.toFixed(3)})`,
            { ...TOLERANCE, hint },
          );
        }
      },
    },
    {
      name: "applyRepetitionPenalty returns a new array: penalty 1 or an empty history change nothing, the input is kept",
      hint:
        "Work on a copy ([...logits]) and return it: the caller may still need the original logits (to show them, or " +
        "to try another penalty). With penalty 1, dividing and multiplying change nothing.",
      run({ applyRepetitionPenalty }, random) {
        const V = randomInt(random, 5, 30);
        const logits = randomLogits(random, V);
        const history = randomHistory(random, V);
        expectCloseArrays(
          applyRepetitionPenalty([...logits], history, 1),
          logits,
          "applyRepetitionPenalty(logits, history, 1)",
          TOLERANCE,
        );
        expectCloseArrays(
          applyRepetitionPenalty([...logits], [], randomFloat(random, 1.1, 3)),
          logits,
          "applyRepetitionPenalty(logits, [], penalty)",
          TOLERANCE,
        );
        const input = [...logits];
        const result = applyRepetitionPenalty(input, history, randomFloat(random, 1.5, 3));
        if (result === input) fail("applyRepetitionPenalty returned the array it was given, changed in place.");
        expectCloseArrays(input, logits, "the logits passed in, after the call", {
          ...TOLERANCE,
          hint: "Do not change the input array: copy it first.",
        });
      },
    },
    {
      name: "applyFrequencyPresencePenalty subtracts count × frequency penalty, and the presence penalty once",
      hint:
        "count[t] = how often t occurs in the history; logits[t] − count[t] · frequencyPenalty − (count[t] > 0 ? " +
        "presencePenalty : 0). Tokens that never occurred keep their logits.",
      run({ applyFrequencyPresencePenalty }, random) {
        for (let trial = 0; trial < 6; trial++) {
          const V = randomInt(random, 5, 30);
          const logits = randomLogits(random, V);
          const history = randomHistory(random, V);
          const [frequency, presence] = [randomFloat(random, 0.1, 2), randomFloat(random, 0.1, 2)];
          const result = applyFrequencyPresencePenalty([...logits], [...history], frequency, presence);
          const expected = frequencyPresence(logits, history, frequency, presence);
          const matches = (variant: number[]) =>
            Array.isArray(result) && variant.every((x, i) => Math.abs(x - (result[i] as number)) < 1e-5);
          let hint: string | undefined;
          if (matches(frequencyPresence(logits, history, presence, frequency)))
            hint =
              "The two penalties are swapped: the frequency penalty is multiplied by the count, the presence penalty is not.";
          else if (matches(frequencyPresence(logits, [...new Set(history)], frequency, presence)))
            hint = "The frequency penalty grows with every occurrence: multiply it by the token's count.";
          else if (matches(frequencyPresence(logits, history, frequency + presence, 0)))
            hint = "The presence penalty is paid once per token that occurs, not once per occurrence.";
          else if (matches(frequencyPresence(logits, history, -frequency, -presence)))
            hint = "Subtract the penalties: they should make used tokens less likely.";
          expectCloseArrays(
            result,
            expected,
            `applyFrequencyPresencePenalty(${V} logits, history [${history.join(", ")}], ${frequency.toFixed(3)}, ${presence.toFixed(3)})`,
            { ...TOLERANCE, hint },
          );
        }
      },
    },
    {
      name: "generateGreedyWithPenalty with penalty 1 is gpt-course's greedy generation",
      hint: "Each step: run the model on all ids so far, take the last position's logits, penalise, argmax, append. Return only the new tokens.",
      async run({ generateGreedyWithPenalty }, random) {
        const model = randomModel(random);
        try {
          const prompt = Array.from({ length: randomInt(random, 1, 5) }, () => random.int(model.config.vocabSize));
          const maxNewTokens = randomInt(random, 4, 10);
          const expected = (await generate(model, prompt, { maxNewTokens, temperature: 0 })).tokens[0] as number[];
          const tokens = await generateGreedyWithPenalty(model, [...prompt], maxNewTokens, 1);
          if (!Array.isArray(tokens) || tokens.join() !== expected.join()) {
            fail(
              `for the prompt [${prompt}], generateGreedyWithPenalty(…, ${maxNewTokens}, 1) gave ${JSON.stringify(tokens)}, expected [${expected}].`,
            );
          }
        } finally {
          model.dispose();
        }
      },
    },
    {
      name: "generateGreedyWithPenalty penalises every token seen so far, the prompt's included",
      hint:
        "At each step the history is every id so far: the prompt and the tokens generated before. Penalise the last " +
        "position's logits with applyRepetitionPenalty(logits, ids, penalty), then take the argmax. If " +
        "applyRepetitionPenalty fails its own check, fix it first.",
      async run({ generateGreedyWithPenalty }, random) {
        const model = randomModel(random);
        try {
          const prompt = Array.from({ length: randomInt(random, 3, 8) }, () => random.int(model.config.vocabSize));
          const maxNewTokens = randomInt(random, 8, 16);
          const penalty = randomFloat(random, 1.3, 3);
          const expected = referenceGeneration(model, prompt, maxNewTokens, penalty);
          const tokens = await generateGreedyWithPenalty(model, [...prompt], maxNewTokens, penalty);
          if (!Array.isArray(tokens) || tokens.join() !== expected.join()) {
            const same = (variant: number[]) =>
              Array.isArray(tokens) && variant.join() !== expected.join() && tokens.join() === variant.join();
            let hint: string | undefined;
            if (
              same(
                referenceGeneration(model, prompt, maxNewTokens, penalty, (ids, promptLength) =>
                  ids.slice(promptLength),
                ),
              )
            ) {
              hint =
                "Only the generated tokens were penalised: the history includes the prompt (as in Hugging Face's repetition_penalty).";
            } else if (same(referenceGeneration(model, prompt, maxNewTokens, 1))) {
              hint = "No penalty was applied: penalise the logits with applyRepetitionPenalty before the argmax.";
            } else if (same(referenceGeneration(model, prompt, maxNewTokens, penalty, undefined, "per occurrence"))) {
              hint = "Penalise each token once, however often it occurs (see the first check).";
            }
            fail(
              `for the prompt [${prompt}] and penalty ${penalty.toFixed(3)}, generateGreedyWithPenalty gave ${JSON.stringify(tokens)}, expected [${expected}].`,
              hint,
            );
          }
        } finally {
          model.dispose();
        }
      },
    },
  ],
});
