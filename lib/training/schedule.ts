/**
 * Learning rate at `step` (counting from 0): a linear warm-up from 0 to `maxLearningRate` over
 * `warmupSteps`, then a cosine decay to `minLearningRate` at `totalSteps`, constant after that.
 *
 * Warm-up gives Adam's moment estimates a few steps to settle before large updates; the slow cosine decay
 * lets the weights settle into a minimum at the end instead of bouncing around it.
 */
export interface LearningRateSchedule {
  maxLearningRate: number;
  minLearningRate: number;
  warmupSteps: number;
  totalSteps: number;
}

export function learningRateAt(step: number, schedule: LearningRateSchedule): number {
  const { maxLearningRate, minLearningRate, warmupSteps, totalSteps } = schedule;
  if (step < warmupSteps) return (maxLearningRate * (step + 1)) / warmupSteps;
  if (step >= totalSteps) return minLearningRate;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps); // 0 → 1
  const cosine = 0.5 * (1 + Math.cos(Math.PI * progress)); // 1 → 0
  return minLearningRate + cosine * (maxLearningRate - minLearningRate);
}
