import type { GPTConfigInput } from "../models/config.js";
import type { TokenDatasetOptions } from "../training/data.js";
import type { TrainerOptions } from "../training/trainer.js";
import type { ConversationDatasetOptions } from "./sft-data.js";

/**
 * The base model for chat: what notebook 07 and `npm run pretrain -- --recipe chat-base` train before
 * fine-tuning.
 *
 * The difference from chapter 05's model is the tokenizer: byte-pair encoding (chapter 01) trained on the State
 * of the Union addresses plus the training conversations, with every digit a token of its own (DIGITS_PATTERN),
 * so that arithmetic works on the same ten digit tokens in every number. A conversation is then about 25 tokens
 * instead of 50 characters and a capital is 1-3 tokens to recall instead of 4-12 letters: from a character
 * model, the same fine-tuning reached 4.5% of held-out capitals; from this one, 93-95.5% (data/README.md).
 *
 * Pretraining is short (150 steps, about a minute): at this scale it barely changes what fine-tuning reaches
 * (data/README.md: fine-tuning a random model and a 400-step base gave the same loss and accuracy).
 */
export const chatBasePretraining = {
  tokenizer: { vocabSize: 1536 }, // 256 bytes + 1,280 merges, trained with DIGITS_PATTERN
  model: { preset: "course", dropout: 0 } satisfies GPTConfigInput,
  trainer: {
    maxSteps: 150,
    learningRate: 2e-3,
    minLearningRate: 2e-4,
    warmupSteps: 15,
    evalInterval: 0,
    evalBatches: 8,
  } satisfies Partial<TrainerOptions>,
  data: { batchSize: 16, validationFraction: 0.1, seed: 1337 } satisfies Partial<TokenDatasetOptions>,
};

/**
 * The course's fine-tuning recipe, from the chat base model above: `npm run finetune` and notebook 07 use it.
 *
 * Batches of 8 rows of 128 positions, each packed with whole conversations (about 39 per batch with the
 * BPE tokenizer, 24 tokens per conversation; a conversation has only a few graded tokens, its answer).
 * Peak learning rate 2e-3: with packed batches it learned faster than 1e-3 (PyTorch simulation of this
 * recipe: 80% vs 46% of held-out additions after 1,600 steps). 2,100 steps, about 4.7 passes over the
 * 17,000 training conversations; they reach 83-90.5% of held-out additions and 93-95.5% of capitals, in
 * 7.5-14 minutes with pretraining on a 2-core machine (data/README.md has the runs, and how the time varies
 * with the machine's other tenants).
 */
export const courseFineTuning = {
  trainer: {
    maxSteps: 2100,
    learningRate: 2e-3,
    minLearningRate: 2e-4,
    warmupSteps: 50,
    evalInterval: 300,
    evalBatches: 8,
  } satisfies Partial<TrainerOptions>,
  data: {
    batchSize: 8, // rows per step, each packed with whole conversations
    validationFraction: 0.02, // the last 2% of train.jsonl measures a validation loss
    seed: 1337,
  } satisfies Partial<ConversationDatasetOptions> & { validationFraction: number },
};
