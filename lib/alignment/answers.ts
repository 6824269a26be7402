import * as tf from "@tensorflow/tfjs";
import { type ChatMessage, chatTokenIds, renderPrompt } from "../finetuning/chat-template.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { IGNORE_INDEX } from "../training/loss.js";

/**
 * Rows that grade one answer each: the conversation so far (rendered as the model sees it before it answers),
 * then the answer and `<|end|>`. The targets are the next tokens of the answer and its `<|end|>` only (as in
 * chapter 07's loss masking; everything else is IGNORE_INDEX), so a row's log-probability, summed over its
 * targets, is ln p(answer | conversation). Rows are padded to the longest; a conversation too long for the
 * model's context keeps its last `contextLength` + 1 tokens.
 */
export function answerRows(
  tokenizer: Tokenizer,
  conversations: ReadonlyArray<{ history: readonly ChatMessage[]; answer: string }>,
  contextLength: number,
): { inputs: tf.Tensor2D; targets: tf.Tensor2D } {
  const end = chatTokenIds(tokenizer).end;
  const rows = conversations.map(({ history, answer }) => {
    const prompt = renderPrompt(tokenizer, history);
    const reply = [...tokenizer.encode(answer), end];
    const ids = [...prompt, ...reply].slice(-(contextLength + 1));
    const graded = Math.min(reply.length, ids.length - 1); // the reply's tokens are the last targets
    const targets = ids.slice(1).map((id, t) => (t >= ids.length - 1 - graded ? id : IGNORE_INDEX));
    return { inputs: ids.slice(0, -1), targets };
  });
  const width = Math.max(...rows.map((row) => row.inputs.length));
  const pad = (values: number[], filler: number) => [...values, ...new Array(width - values.length).fill(filler)];
  return {
    inputs: tf.tensor2d(
      rows.map((row) => pad(row.inputs, 0)),
      [rows.length, width],
      "int32",
    ),
    targets: tf.tensor2d(
      rows.map((row) => pad(row.targets, IGNORE_INDEX)),
      [rows.length, width],
      "int32",
    ),
  };
}
