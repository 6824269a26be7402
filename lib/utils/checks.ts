import * as tf from "@tensorflow/tfjs";

/**
 * Checks the notebooks and exercises use to compare code written by hand with the library's: each throws an
 * error that says what differed, so a failed check stops a notebook at the cell that failed.
 */

/** The largest |a − b| over all elements of two tensors of the same shape. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  if (a.shape.join() !== b.shape.join()) throw new Error(`maxAbsDiff: shapes differ, [${a.shape}] and [${b.shape}].`);
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]);
}

/** Throws unless a and b agree to `tolerance` everywhere; prints the largest difference when they do. */
export function assertClose(a: tf.Tensor, b: tf.Tensor, what: string, tolerance = 1e-5): void {
  const difference = maxAbsDiff(a, b);
  if (!(difference <= tolerance)) throw new Error(`${what}: largest |difference| ${difference} > ${tolerance}`);
  console.log(`${what}: largest |difference| ${difference.toExponential(1)} ✓`);
}

/**
 * Runs `work`, which must throw (an error whose message matches `pattern`, if given), and returns the message.
 * A check written as `try { work(); throw ... } catch { ... }` would catch its own "expected an error" too.
 */
export function expectError(work: () => unknown, pattern?: RegExp): string {
  try {
    work();
  } catch (error) {
    const message = (error as Error).message;
    if (pattern && !pattern.test(message)) throw new Error(`expected an error matching ${pattern}, got: ${message}`);
    return message;
  }
  throw new Error(`expected an error${pattern ? ` matching ${pattern}` : ""}, but none was thrown`);
}
