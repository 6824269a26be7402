import type { ConversationDatasetOptions } from "./sft-data.js";
import type { TrainerOptions } from "../training/trainer.js";

/**
 * The course's fine-tuning recipe: `npm run finetune` (from the BPE base model of
 * scripts/configs/chat-base.json) and notebook 07 (from notebook 05's character model) use it.
 *
 * Same peak learning rate as pretraining (1e-3): higher rates (3e-3, 4e-3) learned these tasks markedly
 * more slowly in our runs, e.g. additions alone plateaued at one answer for every question. Batches of 32
 * whole conversations (a conversation has only a few graded tokens, its answer). 2,000 steps, about 3.7
 * passes over the 17,000 training conversations: with the BPE base model (24 tokens per conversation) they
 * took 996 s of CPU on one core (16 minutes); with its 3 minutes of pretraining, 20 minutes in all
 * (data/README.md has the accuracy it reaches).
 */
export const courseFineTuning = {
  trainer: {
    maxSteps: 2000,
    learningRate: 1e-3,
    minLearningRate: 1e-4,
    warmupSteps: 50,
    evalInterval: 300,
    evalBatches: 8,
  } satisfies Partial<TrainerOptions>,
  data: {
    batchSize: 32, // conversations per step
    bucketBatches: 2, // sort only 2 batches' worth by length: less padding, yet each batch mixes tasks
    validationFraction: 0.02, // the last 2% of train.jsonl measures a validation loss
    seed: 1337,
  } satisfies Partial<ConversationDatasetOptions> & { validationFraction: number },
};
