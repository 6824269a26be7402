/**
 * Checks for 06-top-k-top-p: each step against gpt-course's `nextTokenProbabilities` with the matching
 * option, on random logits (some large enough to overflow a naive exp), and the draw against gpt-course's
 * `sampleNextToken` fed the same uniform number.
 */
import { nextTokenProbabilities as libProbabilities, Random, sampleNextToken, type SamplingOptions } from "gpt-course";
import { type Conforms, defineExercise, expectCloseArrays, fail, randomFloat, randomInt } from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/**
 * Random logits. `large` ones (up to ±1000; often about a third of the time) overflow exp even in float64
 * (beyond exp(709)) unless the maximum is subtracted first.
 */
function randomLogits(random: Random, large = random.next() < 0.3): number[] {
  const scale = large ? 1000 : randomFloat(random, 1, 4);
  return Array.from({ length: randomInt(random, 5, 40) }, () => (random.next() * 2 - 1) * scale);
}

const TOLERANCE = { atol: 1e-9, rtol: 1e-9 };
const describeLogits = (logits: number[]): string => `${logits.length} logits`;

export default defineExercise<Exports>({
  title: "Top-k and top-p sampling",
  teaches: "temperature, top-k, nucleus (top-p) filtering, renormalising, inverse-transform sampling",
  checks: [
    {
      name: "softmaxWithTemperature matches gpt-course (large logits too)",
      hint:
        "p_i = exp(l_i / T − m) / Σ_j exp(l_j / T − m) with m = max_j l_j / T. Without subtracting m, exp(1000) is " +
        "Infinity (even in float64) and the result NaN.",
      run({ softmaxWithTemperature }, random) {
        for (let trial = 0; trial < 5; trial++) {
          const logits = randomLogits(random, trial === 0);
          const temperature = randomFloat(random, 0.3, 2);
          const expected = libProbabilities(logits, { temperature });
          expectCloseArrays(
            softmaxWithTemperature(logits, temperature),
            expected,
            `softmaxWithTemperature(${describeLogits(logits)}, ${temperature.toFixed(3)})`,
            TOLERANCE,
          );
        }
      },
    },
    {
      name: "keepTopK keeps the k most likely tokens, renormalised",
      hint:
        "Sort the ids (not the probabilities: you need to know where each came from) by decreasing probability, " +
        "keep the first k, set the others to 0, and divide the kept ones by their sum.",
      run({ keepTopK }, random) {
        for (let trial = 0; trial < 5; trial++) {
          const logits = randomLogits(random);
          const k = randomInt(random, 1, logits.length);
          const probabilities = Array.from(libProbabilities(logits));
          const expected = libProbabilities(logits, { topK: k });
          const result = keepTopK(probabilities, k);
          if (Array.isArray(result) && result.length === expected.length) {
            const kept = result.filter((p) => p > 0).length;
            if (kept === k && Math.abs(result.reduce((a, b) => a + b, 0) - 1) > 1e-6) {
              fail(
                `keepTopK kept ${k} tokens but they add up to ${result.reduce((a, b) => a + b, 0)}.`,
                "Renormalise: divide the kept probabilities by their sum.",
              );
            }
          }
          expectCloseArrays(result, expected, `keepTopK(${describeLogits(logits)}, k = ${k})`, TOLERANCE);
        }
      },
    },
    {
      name: "keepTopP keeps the smallest set of most likely tokens reaching p, renormalised",
      hint:
        "Walk the ids by decreasing probability, keeping each one, and stop right after the running sum reaches p " +
        "(so the token that crosses p is kept: with p = 0.75 and 0.5, 0.3, ... you keep 0.5 and 0.3). Renormalise.",
      run({ keepTopP }, random) {
        for (let trial = 0; trial < 5; trial++) {
          const logits = randomLogits(random);
          const p = randomFloat(random, 0.3, 0.97);
          const probabilities = Array.from(libProbabilities(logits));
          const expected = libProbabilities(logits, { topP: p });
          const result = keepTopP(probabilities, p);
          let hint: string | undefined;
          if (
            Array.isArray(result) &&
            result.filter((q) => q > 0).length === expected.filter((q) => q > 0).length - 1
          ) {
            hint = "You kept one token too few: include the token whose probability makes the running sum reach p.";
          }
          expectCloseArrays(result, expected, `keepTopP(${describeLogits(logits)}, p = ${p.toFixed(3)})`, {
            ...TOLERANCE,
            hint,
          });
        }
      },
    },
    {
      name: "nextTokenProbabilities combines temperature, top-k and top-p (0 = greedy)",
      hint:
        "temperature 0: probability 1 for the first largest logit, 0 elsewhere. Otherwise softmaxWithTemperature " +
        "(default temperature 1), then keepTopK when topK is given, then keepTopP when topP < 1.",
      run({ nextTokenProbabilities }, random) {
        for (let trial = 0; trial < 8; trial++) {
          const logits = randomLogits(random);
          const options: SamplingOptions = {};
          if (random.next() < 0.7) options.temperature = random.next() < 0.2 ? 0 : randomFloat(random, 0.3, 2);
          if (random.next() < 0.6) options.topK = randomInt(random, 1, logits.length);
          if (random.next() < 0.6) options.topP = randomFloat(random, 0.3, 0.97);
          const expected = libProbabilities(logits, options);
          expectCloseArrays(
            nextTokenProbabilities(logits, { ...options }),
            expected,
            `nextTokenProbabilities(${describeLogits(logits)}, ${JSON.stringify(options)})`,
            TOLERANCE,
          );
        }
      },
    },
    {
      name: "sampleToken picks the token whose stretch of [0, 1) contains u",
      hint:
        "Add the probabilities up in id order (0, 1, 2, ...) and return the first id where the sum exceeds u. Token i " +
        "then owns a stretch of [0, 1) exactly as long as its probability, so a uniform u picks it that often.",
      run({ sampleToken }, random) {
        for (let trial = 0; trial < 40; trial++) {
          const logits = randomLogits(random);
          const options: SamplingOptions =
            random.next() < 0.5 ? { topK: randomInt(random, 1, logits.length) } : { topP: randomFloat(random, 0.5, 1) };
          const probabilities = Array.from(libProbabilities(logits, options));
          const u = random.next();
          // Skip the rare u that sits on a boundary, where the last bit of rounding decides.
          const cumulative = probabilities.map((_, i) => probabilities.slice(0, i + 1).reduce((a, b) => a + b, 0));
          if (cumulative.some((c) => Math.abs(c - u) < 1e-9)) continue;
          const fixed = new Random(0);
          fixed.next = () => u; // gpt-course draws exactly one uniform number per token
          const expected = sampleNextToken(logits, options, fixed);
          const token = sampleToken(probabilities, u);
          if (token !== expected) {
            const shown = probabilities
              .map((p) => p.toFixed(3))
              .slice(0, 8)
              .join(", ");
            fail(
              `sampleToken([${shown}${probabilities.length > 8 ? ", ..." : ""}], u = ${u.toFixed(4)}) is ${token}, expected ${expected}.`,
            );
          }
        }
      },
    },
  ],
});
