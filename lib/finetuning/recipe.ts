import type { ConversationDatasetOptions } from "./sft-data.js";
import type { TrainerOptions } from "../training/trainer.js";

/**
 * The course's fine-tuning recipe: `npm run finetune` (from the BPE base model of
 * scripts/configs/chat-base.json) and notebook 07 (from notebook 05's character model) use it.
 *
 * Batches of 8 rows of 128 positions, each packed with whole conversations (about 39 per batch with the
 * BPE tokenizer, 24 tokens per conversation; a conversation has only a few graded tokens, its answer).
 * Peak learning rate 2e-3: with packed batches it learned faster than 1e-3 (PyTorch simulation of this
 * recipe: 80% vs 46% of held-out additions after 1,600 steps). 2,100 steps, about 4.7 passes over the
 * 17,000 training conversations; from the BPE base model they reach 83-90.5% of held-out additions and 93-95.5%
 * of capitals, in 7.5-14 minutes with pretraining on this 2-core machine (data/README.md has the runs, and how
 * the time varies with the machine's other tenants).
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
