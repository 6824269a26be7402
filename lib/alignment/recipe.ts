import type { TrainerOptions } from "../training/trainer.js";
import type { PreferenceDatasetOptions } from "./dpo.js";
import type { RewardSamplerOptions } from "./policy-gradient.js";

/**
 * The course's preference-tuning recipes (`npm run align`), starting from chapter 07's chat model; what they did is
 * measured in data/README.md.
 *
 * RL lifts continents, the weakest fact task: the reward is earned on every country's continent asked in eight
 * phrasings (`continentPracticeQuestions` in course-data), so that the model learns the fact rather than the
 * fine-tuning wording, with some capital and counting questions, whose groups mostly score alike and only speak
 * when an answer slips. Replaying 16 fine-tuning answers of every task per step keeps the tasks the reward does
 * not test in place. Advantages are not divided by the group's spread (see groupAdvantages).
 *
 * DPO: learning rates far below fine-tuning's; larger steps cost capitals and additions 12-31 points.
 */
export const alignmentRecipes = {
  rl: {
    /** Per task: "practice" questions, or how many of its fine-tuning questions (course-data's rewardQuestions). */
    questions: { continent: "practice", capital: 600, count: 300 } as Record<string, "practice" | number>,
    trainer: {
      maxSteps: 300,
      learningRate: 3e-4,
      minLearningRate: 3e-5,
      warmupSteps: 10,
      evalInterval: 0,
      evalBatches: 1,
      weightDecay: 0,
    } satisfies Partial<TrainerOptions>,
    sampling: {
      questionsPerBatch: 8,
      groupSize: 8,
      temperature: 1,
      divideByStd: false,
      maxNewTokens: 40,
      validationFraction: 0,
      seed: 7,
      replayRows: 16,
      replayWeight: 1,
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
    chosenWeight: 0,
  },
};
