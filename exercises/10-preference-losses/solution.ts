/**
 * Exercise 10-preference-losses · reference solution: the two losses of preference tuning. DPO learns from pairs
 * of a preferred and a rejected answer; reinforcement learning from a verifiable reward learns from groups of
 * answers the model sampled itself, each scored by a program. Both start from the log-probability of a whole answer.
 */
import { IGNORE_INDEX, tf } from "gpt-course";

/**
 * ln π(answer | question) for every row: the log-probabilities of the row's graded tokens (targets that are not
 * IGNORE_INDEX), summed. An answer's probability is the product of its tokens' probabilities,
 *
 *   π(y | x) = Π_t π(y_t | x, y_<t),   so   ln π(y | x) = Σ_t ln π(y_t | x, y_<t),
 *
 * and only the answer's tokens are graded: the question's are the same for every answer to it.
 *
 * logits: (B, T, V), position t scoring the token that comes after input t; targets: (B, T) int32, already
 * aligned with the logits (targets[b][t] is the token that follows input t), IGNORE_INDEX where not graded.
 * Returns (B).
 */
export function sequenceLogProbabilities(logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const vocabSize = logits.shape[2];
    const graded = targets.notEqual(IGNORE_INDEX); // (B, T) bool
    // tf.oneHot wants ids in 0..V-1: give the ignored positions id 0; they are zeroed below anyway.
    const safeTargets = tf.where(graded, targets, tf.zerosLike(targets)) as tf.Tensor2D;
    // log-softmax, not softmax: we want ln π, and tf.logSoftmax computes it without taking the log of a tiny number.
    const logProbabilities = tf.logSoftmax(logits); // (B, T, V)
    const picked = logProbabilities.mul(tf.oneHot(safeTargets, vocabSize)).sum(-1); // (B, T): ln π(target_t)
    // A sum, not a mean: the log of a product of probabilities. Ignored positions count 0.
    return picked.mul(graded.toFloat()).sum(1) as tf.Tensor1D; // (B)
  });
}

/**
 * Direct Preference Optimization (Rafailov et al., 2023) over P pairs: each argument is (P), the summed
 * log-probability of the chosen (preferred) or rejected answer under the policy being trained or under the frozen
 * reference model. With the margin
 *
 *   m = β [ (ln π(y_w) − ln π_ref(y_w)) − (ln π(y_l) − ln π_ref(y_l)) ],
 *
 * the loss is −mean ln σ(m): the negative log-likelihood of the preferences under the Bradley-Terry model, with
 * the reward r(y) = β ln(π(y)/π_ref(y)) that the policy implicitly defines. Returns a scalar.
 */
export function dpoLoss(
  policyChosen: tf.Tensor1D,
  policyRejected: tf.Tensor1D,
  referenceChosen: tf.Tensor1D,
  referenceRejected: tf.Tensor1D,
  beta: number,
): tf.Scalar {
  return tf.tidy(() => {
    const chosenReward = policyChosen.sub(referenceChosen); // how much more likely the policy makes y_w than the reference
    const rejectedReward = policyRejected.sub(referenceRejected);
    const margin = chosenReward.sub(rejectedReward).mul(beta); // (P)
    // −ln σ(m) = ln(1 + e^(−m)) = softplus(−m). tf.softplus computes it without overflow: ln σ(−200) would need
    // σ(−200) ≈ 1e-87, which is 0 in float32, and ln 0 = −Infinity; e^200 is Infinity as well.
    return tf.softplus(margin.neg()).mean() as tf.Scalar;
  });
}

/**
 * The advantages of group-relative policy optimisation (GRPO; DeepSeek, 2024): `rewards` holds consecutive groups
 * of `groupSize` answers sampled for the same question; each answer's advantage is its reward relative to its own
 * group,
 *
 *   A_i = (r_i − mean(group)) / (std(group) + 1e-6),   std = √( Σ (r − mean)² / G )   (divided by G, not G − 1),
 *
 * so a group whose answers all scored alike gets 0 everywhere (not 0/0 = NaN): it teaches nothing. Throws when
 * the rewards are not whole groups.
 */
export function groupAdvantages(rewards: readonly number[], groupSize: number): number[] {
  if (rewards.length % groupSize !== 0) {
    throw new Error(`groupAdvantages: ${rewards.length} rewards are not whole groups of ${groupSize}.`);
  }
  const advantages: number[] = [];
  for (let start = 0; start < rewards.length; start += groupSize) {
    const group = rewards.slice(start, start + groupSize);
    const mean = group.reduce((sum, reward) => sum + reward, 0) / groupSize;
    const variance = group.reduce((sum, reward) => sum + (reward - mean) ** 2, 0) / groupSize;
    const std = Math.sqrt(variance);
    // ε keeps an all-alike group at 0 / 1e-6 = 0 instead of 0 / 0.
    for (const reward of group) advantages.push((reward - mean) / (std + 1e-6));
  }
  return advantages;
}
