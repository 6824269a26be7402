/**
 * Exercise 10-preference-losses: the log-probability of an answer, the DPO loss and group advantages. Read
 * README.md in this folder, fill in the TODOs, then check your work with `npm run exercise -- 10-preference-losses`.
 */
import type { tf } from "gpt-course";
// sequenceLogProbabilities and dpoLoss compute with tensors: import { IGNORE_INDEX, tf } from "gpt-course".
import { todo } from "../harness/check.js";

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
  // TODO: inside tf.tidy:
  //       1. graded = targets ≠ IGNORE_INDEX, (B, T); safeTargets = the targets with 0 where ignored
  //          (tf.where(graded, targets, tf.zerosLike(targets))), because tf.oneHot wants ids in 0..V-1;
  //       2. tf.logSoftmax(logits), (B, T, V), times tf.oneHot(safeTargets, V), summed over V: ln π(target), (B, T);
  //       3. zero the ignored positions (· graded as float) and sum over T → (B).
  //       Do not shift the targets again: they are already the next tokens.
  return todo("sequenceLogProbabilities", logits, targets);
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
  // TODO: inside tf.tidy: the margin m (above), (P); then −ln σ(m) = ln(1 + e^(−m)) = tf.softplus(m.neg()),
  //       averaged over the pairs (.mean()). Not tf.log(tf.sigmoid(m)): σ(−200) ≈ 1e-87 is 0 in float32, and ln 0
  //       is −Infinity.
  return todo("dpoLoss", policyChosen, policyRejected, referenceChosen, referenceRejected, beta);
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
  // TODO: throw an Error when rewards.length is not a multiple of groupSize; then, for each group
  //       (rewards.slice(start, start + groupSize)): its mean and std (divided by groupSize), and for each of its
  //       rewards (r − mean) / (std + 1e-6), pushed in order.
  return todo("groupAdvantages", rewards, groupSize);
}
