import type { TrainerOptions } from "../training/trainer.js";
import type { PreferenceDatasetOptions } from "./dpo.js";
import type { RewardSamplerOptions } from "./policy-gradient.js";

/**
 * The course's preference-tuning recipes (`npm run align`), starting from chapter 07's chat model. Learning rates far
 * below fine-tuning's: the model already answers well, and each step should only nudge it. Measured with them
 * (data/README.md): RL raised held-out additions by 4 points and follow-ups by 3 with no task falling; DPO moved
 * counting up 3 points and currencies down 5. Larger steps cost capitals and additions 12-31 points.
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
      replayRows: 0,
      replayWeight: 0,
    } satisfies RewardSamplerOptions,
    klWeight: 0.05,
  },
  dpo: {
    tasks: ["continent", "currency", "count", "addition", "capital"],
    trainer: {
      maxSteps: 200,
      learningRate: 2e-5,
      minLearningRate: 2e-6,
      warmupSteps: 10,
      evalInterval: 50,
      evalBatches: 4,
      weightDecay: 0,
    } satisfies Partial<TrainerOptions>,
    data: { batchSize: 16, validationFraction: 0.05, seed: 7 } satisfies PreferenceDatasetOptions,
    beta: 0.5,
  },
};
