import * as tf from "@tensorflow/tfjs";

/**
 * Replacing a backend's kernel while keeping the original, so a replacement can hand the cases it does
 * not handle back to it, and so measurements can switch between the two.
 */
const originals = new Map<string, tf.KernelConfig>();

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };
export type KernelImpl = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

/** The backend's own kernel that `replaceKernel` displaced (or the current one if none was replaced). */
export function originalKernel(kernelName: string, backendName: string): tf.KernelConfig {
  const config = originals.get(`${backendName}:${kernelName}`) ?? tf.getKernel(kernelName, backendName);
  if (!config) throw new Error(`No ${kernelName} kernel registered for backend ${backendName}.`);
  return config;
}

/** Runs the displaced original kernel on the same arguments. */
export function runOriginal(kernelName: string, args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  return originalKernel(kernelName, "wasm").kernelFunc(args as Parameters<tf.KernelFunc>[0]);
}

/** Registers `kernelFunc` for (kernelName, backendName), remembering the original once. Idempotent. */
export function replaceKernel(kernelName: string, backendName: string, kernelFunc: KernelImpl): void {
  const key = `${backendName}:${kernelName}`;
  const current = tf.getKernel(kernelName, backendName);
  if (current?.kernelFunc === (kernelFunc as unknown)) return;
  if (current && !originals.has(key)) originals.set(key, current);
  if (current) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ kernelName, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

/** Puts the original kernel back (for A/B measurements). */
export function restoreKernel(kernelName: string, backendName: string): void {
  const key = `${backendName}:${kernelName}`;
  const original = originals.get(key);
  if (!original) return;
  if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel(original);
  originals.delete(key);
}

const defined = new Set<string>();

/** Registers a kernel that is new (no original), e.g. a fused op; replaces an earlier registration. */
export function defineKernel(kernelName: string, backendName: string, kernelFunc: KernelImpl): void {
  if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ kernelName, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  defined.add(`${backendName}:${kernelName}`);
}

/** Removes kernels `defineKernel` added (all, or the named ones): the ops that use them then compose tfjs ops. */
export function unregisterFusedKernels(names?: string[]): void {
  for (const key of [...defined]) {
    const [backendName, kernelName] = key.split(":");
    if (names && !names.includes(kernelName)) continue;
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
    defined.delete(key);
  }
}

/**
 * Kernels whose gradient function takes `null` for an output the loss never reached (our fused kernels'
 * extra outputs: attention's weights, GELU's tanh, LayerNorm's mean and 1/σ). For those TensorFlow.js would
 * first build a tensor of zeros of that output's shape: for attention's weights 4 MB a layer, filled in
 * JavaScript and copied into the heap, every step. backend/gradient-memory.ts hands these kernels null instead.
 */
const missingGradientsAccepted = new Set<string>();

/** Declares that `kernelName`'s registered gradient function accepts null for unused outputs. */
export function acceptMissingOutputGradients(kernelName: string): void {
  missingGradientsAccepted.add(kernelName);
}

/** Whether `kernelName`'s gradient function accepts null for unused outputs (see above). */
export function acceptsMissingOutputGradients(kernelName: string): boolean {
  return missingGradientsAccepted.has(kernelName);
}
