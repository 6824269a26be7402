import type { ConversationDatasetOptions } from "./sft-data.js";
import type { TrainerOptions } from "../training/trainer.js";

/**
 * The course's fine-tuning recipe, for the course model pretrained by `npm run pretrain` or notebook 05:
 * `npm run finetune` and notebook 07 use it.
 *
 * Compared with pretraining: a higher learning rate and a short warm-up (the base model supplies letters
 * and words; the tasks are new and must be learned in minutes), and small batches of whole conversations
 * (more updates per minute: a conversation has only a few graded tokens, its answer).
 */
export const courseFineTuning = {
  trainer: {
    maxSteps: 1500,
    learningRate: 4e-3,
    minLearningRate: 4e-4,
    warmupSteps: 50,
    evalInterval: 250,
    evalBatches: 8,
  } satisfies Partial<TrainerOptions>,
  data: {
    batchSize: 16, // conversations per step
    validationFraction: 0.02, // the last 2% of train.jsonl measures a validation loss
    seed: 1337,
  } satisfies Partial<ConversationDatasetOptions> & { validationFraction: number },
};
