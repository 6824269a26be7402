import * as tf from "@tensorflow/tfjs";
import { fusedCrossEntropy } from "../kernels/fused.js";
import { canReadSynchronously } from "../utils/sync-reads.js";

/** Targets equal to this are skipped by the loss (PyTorch's convention): prompts, padding. */
export const IGNORE_INDEX = -100;

/**
 * Mean cross-entropy of next-token predictions:
 *
 *   loss = −1/N Σ log softmax(logits_i)[target_i]    over the N positions whose target ≠ ignoreIndex
 *
 * A model that guesses uniformly over V tokens scores ln V, which is where a fresh GPT starts.
 *
 * logits: (..., V) float; targets: (...) int32. The gradient is written out by hand,
 * ∂loss/∂logits_i = (softmax(logits_i) − onehot(target_i)) / N, which is exact, needs no gather gradient
 * (missing on the WebAssembly backend) and never builds a (N, V) one-hot tensor in the forward pass.
 */
export function crossEntropy(logits: tf.Tensor, targets: tf.Tensor, ignoreIndex = IGNORE_INDEX): tf.Scalar {
  const vocabSize = logits.shape[logits.rank - 1];
  if (targets.shape.join() !== logits.shape.slice(0, -1).join()) {
    throw new Error(
      `crossEntropy: targets of shape [${targets.shape}] do not match logits of shape [${logits.shape}]; ` +
        `targets must have the logits' shape without the last (vocabulary) axis.`,
    );
  }
  if (targets.dtype !== "int32")
    throw new Error(`crossEntropy: targets must be int32 token ids, got ${targets.dtype}.`);
  checkTargets(targets, vocabSize, ignoreIndex);
  // The same maths as one fused kernel each way where the backend has one (a speed-up only; lib/kernels/fused.ts).
  const fused = fusedCrossEntropy(logits, targets, ignoreIndex);
  if (fused) return fused;
  const loss = tf.customGrad((logitsInput, targetsInput, save) => {
    const rows = (logitsInput as tf.Tensor).reshape([-1, vocabSize]) as tf.Tensor2D; // (N, V)
    const flatTargets = (targetsInput as tf.Tensor).reshape([-1]) as tf.Tensor1D; // (N)
    const valid = flatTargets.notEqual(ignoreIndex); // (N) bool
    const safeTargets = tf.where(valid, flatTargets, tf.zerosLike(flatTargets)) as tf.Tensor1D;
    const count = tf.maximum(valid.sum(), 1); // positions that count; at least 1 to avoid 0/0
    const logSumExp = rows.logSumExp(-1); // (N)
    const rowStarts = tf.range(0, rows.shape[0], 1, "int32").mul(tf.scalar(vocabSize, "int32"));
    const targetLogits = tf.gather(rows.reshape([-1]), rowStarts.add(safeTargets)); // logits[i, target_i], (N)
    const perPosition = logSumExp.sub(targetLogits).mul(valid.toFloat()); // −log p(target), 0 where ignored
    (save as tf.GradSaveFunc)([rows, safeTargets, valid, count]);
    return {
      value: perPosition.sum().div(count) as tf.Scalar,
      gradFunc: (dy, [savedRows, savedTargets, savedValid, savedCount]) => {
        const probabilities = tf.softmax(savedRows as tf.Tensor2D); // (N, V)
        const oneHot = tf.oneHot(savedTargets as tf.Tensor1D, vocabSize).toFloat();
        const scale = (savedValid as tf.Tensor).toFloat().div(savedCount).mul(dy).expandDims(1); // (N, 1)
        const dLogits = probabilities
          .sub(oneHot)
          .mul(scale)
          .reshape((logitsInput as tf.Tensor).shape);
        return [dLogits, tf.zerosLike(targetsInput as tf.Tensor)];
      },
    };
  });
  return loss(logits, targets) as tf.Scalar;
}

/** Throws on a target id outside [0, V) other than the ignore index (only where reading it back is cheap). */
function checkTargets(targets: tf.Tensor, vocabSize: number, ignoreIndex: number): void {
  if (!canReadSynchronously()) return;
  const outOfRange = tf.tidy(() => {
    const bad = targets.less(0).logicalOr(targets.greaterEqual(vocabSize)).logicalAnd(targets.notEqual(ignoreIndex));
    return bad.any().dataSync()[0] ? targets.where(bad, tf.zerosLike(targets)).flatten().arraySync() : [];
  });
  const badTarget = (outOfRange as number[]).find((id) => id !== 0) ?? 0;
  if (outOfRange.length > 0) {
    throw new Error(
      `crossEntropy: target id ${badTarget} is out of range; targets must be in [0, ${vocabSize - 1}] or equal ` +
        `the ignore index ${ignoreIndex}.`,
    );
  }
}
