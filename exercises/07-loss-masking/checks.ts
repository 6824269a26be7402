/**
 * Checks for 07-loss-masking: targets and padding against a direct computation on random conversations
 * (rendered like gpt-course's chat template: role marker, content, <|end|>), and the loss against
 * gpt-course's `crossEntropy` with IGNORE_INDEX on random logits.
 */
import { crossEntropy, IGNORE_INDEX, type Random, tf } from "gpt-course";
import {
  type Conforms,
  defineExercise,
  expectClose,
  expectEqualArrays,
  expectTensor,
  fail,
  randomInt,
  randomTensor,
} from "../harness/check.js";
import type { Conversation } from "./solution.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

const MARKERS = { system: 90, user: 91, assistant: 92, end: 93 };

/** A random conversation: [system], then user/assistant turns; assistant content and its <|end|> are trained. */
function randomConversation(random: Random): Conversation {
  const ids: number[] = [];
  const assistantMask: number[] = [];
  const message = (role: keyof typeof MARKERS, trained: boolean): void => {
    ids.push(MARKERS[role]);
    assistantMask.push(0);
    for (let i = randomInt(random, 1, 6); i > 0; i--) {
      ids.push(random.int(80));
      assistantMask.push(trained ? 1 : 0);
    }
    ids.push(MARKERS.end);
    assistantMask.push(trained ? 1 : 0);
  };
  if (random.next() < 0.5) message("system", false);
  for (let turn = randomInt(random, 1, 3); turn > 0; turn--) {
    message("user", false);
    message("assistant", true);
  }
  return { ids, assistantMask };
}

function expectedTargets({ ids, assistantMask }: Conversation): { inputs: number[]; targets: number[] } {
  const inputs = ids.slice(0, -1);
  return {
    inputs,
    targets: inputs.map((_, t) => (assistantMask[t + 1] === 1 ? (ids[t + 1] as number) : IGNORE_INDEX)),
  };
}

/** Random logits and targets with about 40% of the positions ignored (at least one counted). */
function randomLossInputs(random: Random): { logits: tf.Tensor; targets: tf.Tensor; ignored: boolean[] } {
  const [B, T, V] = [randomInt(random, 1, 3), randomInt(random, 2, 8), randomInt(random, 3, 12)];
  const ignored = Array.from({ length: B * T }, (_, i) => i > 0 && random.next() < 0.4);
  const targets = tf.tensor2d(
    ignored.map((skip) => (skip ? IGNORE_INDEX : random.int(V))),
    [B, T],
    "int32",
  );
  return { logits: randomTensor(random, [B, T, V], 2), targets, ignored };
}

export default defineExercise<Exports>({
  title: "Loss masking for fine-tuning",
  teaches:
    "next-token targets, IGNORE_INDEX for prompt and padding, a cross-entropy that averages over counted positions only",
  checks: [
    {
      name: "shiftedTargets shifts by one and ignores every target the assistant did not write",
      hint:
        "inputs = ids without the last; targets[t] = ids[t + 1] when assistantMask[t + 1] is 1, else IGNORE_INDEX. " +
        "Role markers are never trained, but the assistant's closing <|end|> is: that is how the model learns to stop.",
      run({ shiftedTargets }, random) {
        for (let trial = 0; trial < 5; trial++) {
          const conversation = randomConversation(random);
          const expected = expectedTargets(conversation);
          const result = shiftedTargets({ ids: [...conversation.ids], assistantMask: [...conversation.assistantMask] });
          expectEqualArrays(
            result?.inputs,
            expected.inputs,
            "inputs",
            "inputs are all ids but the last (the last one has no next token to predict).",
          );
          const { ids, assistantMask } = conversation;
          const offByOne = expected.inputs.map((_, t) =>
            assistantMask[t] === 1 ? (ids[t + 1] as number) : IGNORE_INDEX,
          );
          const hint =
            Array.isArray(result.targets) && result.targets.join() === offByOne.join()
              ? "Off by one: targets[t] is the token at t + 1, so use the mask of t + 1, not of t."
              : undefined;
          expectEqualArrays(
            result.targets,
            expected.targets,
            `targets (ids [${ids.join(", ")}], mask [${assistantMask.join("")}])`,
            hint,
          );
        }
      },
    },
    {
      name: "padBatch pads inputs with padId and targets with IGNORE_INDEX to the longest row",
      hint: "Pad at the end of each row, up to the longest row's number of inputs; padded targets are IGNORE_INDEX so they never count.",
      run({ padBatch }, random) {
        const conversations = Array.from({ length: randomInt(random, 2, 4) }, () => randomConversation(random));
        const padId = 94 + random.int(5);
        const rows = conversations.map(expectedTargets);
        const length = Math.max(...rows.map((row) => row.inputs.length));
        const batch = padBatch(conversations, padId);
        if (!Array.isArray(batch?.inputs) || batch.inputs.length !== rows.length)
          fail(`padBatch should return one row of inputs per conversation (${rows.length}).`);
        rows.forEach((row, b) => {
          const fill = (value: number): number[] => Array<number>(length - row.inputs.length).fill(value);
          expectEqualArrays(batch.inputs[b], [...row.inputs, ...fill(padId)], `inputs row ${b}`);
          expectEqualArrays(batch.targets[b], [...row.targets, ...fill(IGNORE_INDEX)], `targets row ${b}`);
        });
      },
    },
    {
      name: "maskedCrossEntropy matches gpt-course's crossEntropy with ignored positions",
      hint:
        "loss = −(1/n) Σ log softmax(logits_t)[target_t] over the n positions whose target is not IGNORE_INDEX. " +
        "Use tf.logSoftmax (stable) and tf.oneHot to pick each target's log-probability.",
      run({ maskedCrossEntropy }, random) {
        const { logits, targets, ignored } = randomLossInputs(random);
        const expected = crossEntropy(logits, targets);
        const loss = expectTensor(maskedCrossEntropy(logits, targets), "maskedCrossEntropy(logits, targets)");
        const counted = ignored.filter((skip) => !skip).length;
        const hint =
          loss.size === 1 && Math.abs(loss.dataSync()[0]! - (expected.dataSync()[0]! * counted) / ignored.length) < 1e-4
            ? "You divided by all positions; divide by the number of positions that count (targets ≠ IGNORE_INDEX)."
            : undefined;
        expectClose(loss, expected, `the loss (${counted} of ${ignored.length} positions counted)`, { hint });
      },
    },
    {
      name: "ignored positions never matter, and a batch with nothing to learn has loss 0 (not NaN)",
      hint:
        "Multiply each position's loss by the 0/1 valid mask before summing, and divide by max(count, 1) so that a " +
        "batch of padding only gives 0 rather than 0/0.",
      run({ maskedCrossEntropy }, random) {
        const { logits, targets, ignored } = randomLossInputs(random);
        const mask = tf.tensor(
          ignored.map((skip) => (skip ? 1 : 0)),
          [...targets.shape, 1],
        );
        const changed = logits.add(randomTensor(random, logits.shape, 5).mul(mask)); // new logits where ignored only
        expectClose(
          maskedCrossEntropy(changed, targets),
          crossEntropy(logits, targets),
          "the loss after changing the logits of ignored positions",
        );
        const nothing = tf.fill(targets.shape, IGNORE_INDEX, "int32");
        expectClose(maskedCrossEntropy(logits, nothing), tf.scalar(0), "the loss when every target is IGNORE_INDEX");
      },
    },
  ],
});
