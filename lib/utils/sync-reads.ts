import * as tf from "@tensorflow/tfjs";

/**
 * Whether the current backend keeps tensors in the computer's main memory (cpu, wasm, native TensorFlow),
 * so that reading values synchronously (`dataSync`) is cheap. On a GPU it is not: a synchronous read
 * waits for all queued work, and tfjs's WebGPU backend cannot do one at all in Node (it needs a browser's
 * OffscreenCanvas). So lib reads training figures asynchronously (`await tensor.data()`), and the input
 * checks that must read a tensor (are the token ids in range?) run only where this is true.
 */
export function canReadSynchronously(): boolean {
  return ["cpu", "wasm", "tensorflow"].includes(tf.getBackend());
}
