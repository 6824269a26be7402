/**
 * Checks for 05-lr-schedule: every step of random schedules against gpt-course's `learningRateAt`, phase by
 * phase, so a failure says which phase is wrong.
 */
import { type LearningRateSchedule, learningRateAt as libLearningRateAt, type Random } from "gpt-course";
import { type Conforms, defineExercise, fail, randomFloat, randomInt } from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

function randomSchedule(random: Random): LearningRateSchedule {
  const maxLearningRate = 10 ** randomFloat(random, -4, -2);
  const warmupSteps = randomInt(random, 2, 40);
  return {
    maxLearningRate,
    minLearningRate: maxLearningRate * randomFloat(random, 0.01, 0.2),
    warmupSteps,
    totalSteps: warmupSteps + randomInt(random, 10, 400),
  };
}

/** Compares every step in [from, to) with gpt-course; `diagnose` may name the mistake. */
function compareSteps(
  { learningRateAt }: Exports,
  schedule: LearningRateSchedule,
  from: number,
  to: number,
  diagnose?: (step: number, yours: number) => string | undefined,
): void {
  for (let step = from; step < to; step++) {
    const yours = learningRateAt(step, { ...schedule });
    const expected = libLearningRateAt(step, schedule);
    if (typeof yours !== "number" || !(Math.abs(yours - expected) <= 1e-12 + 1e-9 * Math.abs(expected))) {
      fail(
        `learningRateAt(${step}, ${JSON.stringify(schedule)}) is ${yours}, expected ${expected}.`,
        typeof yours === "number" ? diagnose?.(step, yours) : undefined,
      );
    }
  }
}

export default defineExercise<Exports>({
  title: "The learning-rate schedule",
  teaches: "linear warm-up and cosine decay, and why training uses them",
  checks: [
    {
      name: "warm-up rises linearly from max/warmupSteps to max",
      hint: "For step < warmupSteps: maxLearningRate · (step + 1) / warmupSteps.",
      run(exports, random) {
        const schedule = randomSchedule(random);
        compareSteps(exports, schedule, 0, schedule.warmupSteps, (step, yours) =>
          Math.abs(yours - (schedule.maxLearningRate * step) / schedule.warmupSteps) < 1e-15
            ? "Off by one: step counts from 0, and step 0 should already get max / warmupSteps, so use (step + 1)."
            : undefined,
        );
      },
    },
    {
      name: "after warm-up, a cosine decays from max to min",
      hint: "progress = (step − warmupSteps) / (totalSteps − warmupSteps); lr = min + ½(1 + cos(π · progress)) · (max − min).",
      run(exports, random) {
        const schedule = randomSchedule(random);
        compareSteps(exports, schedule, schedule.warmupSteps, schedule.totalSteps, (step, yours) => {
          const progress = (step - schedule.warmupSteps) / (schedule.totalSteps - schedule.warmupSteps);
          const fromZero = 0.5 * (1 + Math.cos(Math.PI * progress)) * schedule.maxLearningRate;
          if (Math.abs(yours - fromZero) < 1e-15)
            return "The cosine should end at minLearningRate, not 0: min + cosine · (max − min).";
          const byStep = 0.5 * (1 + Math.cos((Math.PI * step) / schedule.totalSteps));
          if (
            Math.abs(
              yours - (schedule.minLearningRate + byStep * (schedule.maxLearningRate - schedule.minLearningRate)),
            ) < 1e-15
          ) {
            return "The decay starts after the warm-up: measure progress from warmupSteps, over totalSteps − warmupSteps steps.";
          }
          return undefined;
        });
      },
    },
    {
      name: "after totalSteps the learning rate stays at min",
      hint: "For step ≥ totalSteps return minLearningRate (training may run a little longer than planned).",
      run(exports, random) {
        const schedule = randomSchedule(random);
        compareSteps(exports, schedule, schedule.totalSteps, schedule.totalSteps + randomInt(random, 5, 50));
      },
    },
  ],
});
