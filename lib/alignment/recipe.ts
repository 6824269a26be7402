import type { TrainerOptions } from "../training/trainer.js";
import type { PreferenceDatasetOptions } from "./dpo.js";
import type { RewardSamplerOptions } from "./policy-gradient.js";

/**
 * The course's preference-tuning recipes (chapter 09 and `npm run align`), starting from chapter 07's chat model.
 * Learning rates far below fine-tuning's: the model already answers well, and each step should only nudge it.
 */
export const alignmentRecipes = {
  rl: {
    tasks: ["addition", "subtraction", "capital", "continent", "currency", "count", "followup", "two-questions"],
    trainer: {
      maxSteps: 150,
      learningRate: 1e-4,
      minLearningRate: 1e-5,
      warmupSteps: 10,
      evalInterval: 0,
      evalBatches: 1,
      weightDecay: 0,
    } satisfies Partial<TrainerOptions>,
    sampling: {
      questionsPerBatch: 8,
      groupSize: 8,
      temperature: 1,
      maxNewTokens: 40,
      validationFraction: 0,
      seed: 7,
    } satisfies RewardSamplerOptions,
    klWeight: 0.05,
  },
  dpo: {
    tasks: ["continent", "currency", "count", "addition", "capital"],
    trainer: {
      maxSteps: 200,
      learningRate: 1e-4,
      minLearningRate: 1e-5,
      warmupSteps: 10,
      evalInterval: 50,
      evalBatches: 4,
      weightDecay: 0,
    } satisfies Partial<TrainerOptions>,
    data: { batchSize: 16, validationFraction: 0.05, seed: 7 } satisfies PreferenceDatasetOptions,
    beta: 0.1,
  },
};
