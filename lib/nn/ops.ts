import * as tf from "@tensorflow/tfjs";

/**
 * Two building blocks whose TensorFlow.js defaults are slow or missing on the WebAssembly backend, with
 * the same maths written so every backend runs it fast. The results are identical to `tf.matMul` and
 * `tf.gather`; only how the work is done differs.
 */

/** True when the active backend is WebAssembly, whose fast matmul (XNNPACK) takes only plain 2-D operands. */
function onWasm(): boolean {
  return tf.getBackend() === "wasm";
}

/**
 * a @ b for 2-D tensors, optionally with either operand transposed.
 *
 * The gradient of C = A·B is dA = dC·Bᵀ and dB = Aᵀ·dC. TensorFlow.js computes those with transposed
 * matmuls, which the WebAssembly backend runs in a slow scalar loop. Here, on wasm, every transpose is
 * done explicitly first, so every multiplication (forward and backward) is a plain 2-D matmul.
 */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  if (!onWasm()) return tf.matMul(a, b, transposeA, transposeB);
  const plainMatMul = tf.customGrad((x, y, save) => {
    const left = x as tf.Tensor2D;
    const right = y as tf.Tensor2D;
    (save as tf.GradSaveFunc)([left, right]);
    return {
      value: tf.matMul(left, right),
      gradFunc: (dy, [savedLeft, savedRight]) => [
        tf.matMul(dy as tf.Tensor2D, (savedRight as tf.Tensor2D).transpose()),
        tf.matMul((savedLeft as tf.Tensor2D).transpose(), dy as tf.Tensor2D),
      ],
    };
  });
  return tf.tidy(() => {
    const left = transposeA ? a.transpose() : a;
    const right = transposeB ? b.transpose() : b;
    return plainMatMul(left, right) as tf.Tensor2D;
  });
}

/**
 * Rows of `table` picked by integer `ids`: out[..., :] = table[ids[...], :]. This is an embedding lookup.
 *
 * Its gradient adds each incoming row gradient into the row it came from (a scatter-add). TensorFlow.js
 * does that with the `UnsortedSegmentSum` kernel, which the WebAssembly backend lacks. Where it is missing,
 * the same sum is computed as oneHot(ids)ᵀ · dy, a matmul.
 */
export function embeddingLookup(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor {
  if (tf.getKernel("UnsortedSegmentSum", tf.getBackend()) !== undefined) return tf.gather(table, ids);
  const lookup = tf.customGrad((weights, indices, save) => {
    const flatIds = (indices as tf.Tensor).reshape([-1]).toInt();
    (save as tf.GradSaveFunc)([flatIds]);
    const rows = tf.gather(weights as tf.Tensor2D, flatIds);
    const [vocabSize, width] = (weights as tf.Tensor2D).shape;
    return {
      value: rows.reshape([...(indices as tf.Tensor).shape, width]),
      gradFunc: (dy, [savedIds]) => {
        const oneHot = tf.oneHot(savedIds as tf.Tensor1D, vocabSize).toFloat(); // (N, vocab)
        const dyRows = (dy as tf.Tensor).reshape([-1, width]) as tf.Tensor2D; // (N, width)
        return [matMul(oneHot as tf.Tensor2D, dyRows, true, false), tf.zerosLike(indices as tf.Tensor)];
      },
    };
  });
  return lookup(table, ids);
}
