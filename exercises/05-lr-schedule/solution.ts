/**
 * Exercise 05-lr-schedule · reference solution: linear warm-up, then cosine decay (nanoGPT's get_lr).
 */
import type { LearningRateSchedule } from "gpt-course";

/** The learning rate at `step` (counting from 0). */
export function learningRateAt(step: number, schedule: LearningRateSchedule): number {
  const { maxLearningRate, minLearningRate, warmupSteps, totalSteps } = schedule;
  // 1. Warm-up: rise linearly. Step 0 already gets max / warmupSteps (a learning rate of 0 would waste a step),
  //    and the last warm-up step reaches the maximum.
  if (step < warmupSteps) return (maxLearningRate * (step + 1)) / warmupSteps;
  // 3. After the schedule: stay at the minimum.
  if (step >= totalSteps) return minLearningRate;
  // 2. Cosine decay from the maximum to the minimum: progress goes 0 → 1, the cosine factor 1 → 0.
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
  return minLearningRate + cosine * (maxLearningRate - minLearningRate);
}
