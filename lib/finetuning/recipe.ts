import type { ConversationDatasetOptions } from "./sft-data.js";
import type { TrainerOptions } from "../training/trainer.js";

/**
 * The course's fine-tuning recipe, for the course model pretrained by `npm run pretrain` or notebook 05:
 * `npm run finetune` and notebook 07 use it.
 *
 * Same peak learning rate as pretraining (1e-3): higher rates (3e-3, 4e-3) learned these tasks markedly
 * more slowly in our runs, e.g. additions alone plateaued at one answer for every question. Batches of 32
 * whole conversations (a conversation has only a few graded tokens, its answer). 1,800 steps (about three
 * passes over the 17,000 training conversations) take about 18 minutes on one laptop core (0.6 s/step).
 */
export const courseFineTuning = {
  trainer: {
    maxSteps: 1800,
    learningRate: 1e-3,
    minLearningRate: 1e-4,
    warmupSteps: 50,
    evalInterval: 300,
    evalBatches: 8,
  } satisfies Partial<TrainerOptions>,
  data: {
    batchSize: 32, // conversations per step
    validationFraction: 0.02, // the last 2% of train.jsonl measures a validation loss
    seed: 1337,
  } satisfies Partial<ConversationDatasetOptions> & { validationFraction: number },
};
