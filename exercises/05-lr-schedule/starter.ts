/**
 * Exercise 05-lr-schedule: the learning-rate schedule of pretraining. Read README.md in this folder, fill in
 * the TODOs, then check your work with `npm run exercise -- 05-lr-schedule`.
 */
import type { LearningRateSchedule } from "gpt-course";
import { todo } from "../harness/check.js";

/** The learning rate at `step` (counting from 0). */
export function learningRateAt(step: number, schedule: LearningRateSchedule): number {
  // TODO: three phases (schedule has maxLearningRate, minLearningRate, warmupSteps, totalSteps):
  //       1. step < warmupSteps: rise linearly, max · (step + 1) / warmupSteps;
  //       2. warmupSteps ≤ step < totalSteps: cosine decay from max to min, with
  //          progress = (step − warmupSteps) / (totalSteps − warmupSteps) going from 0 to 1;
  //       3. step ≥ totalSteps: min.
  return todo("learningRateAt", step, schedule);
}
