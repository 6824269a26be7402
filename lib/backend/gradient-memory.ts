import * as tf from "@tensorflow/tfjs";
import { acceptsMissingOutputGradients } from "../kernels/registry.js";

/**
 * Frees backward-pass memory as soon as it is no longer needed.
 *
 * TensorFlow.js (4.x) computes gradients by walking the recorded operations backwards. Two kinds of tensor
 * stay alive until the whole backward pass ends, although each is needed only while one operation's
 * gradient is computed:
 *
 *  - the gradient flowing into each intermediate result (every activation gets one, the same size), and
 *  - the tensors each operation saved in the forward pass for its gradient (its inputs, its output).
 *
 * So the peak of a training step is roughly "all activations + all their gradients", about twice what is
 * needed, and the wasm backend's 4 GiB heap fills twice as fast. This wraps two engine methods so that
 * when the backward pass moves on to the next operation, the previous operation's incoming gradients and
 * saved tensors are disposed. Gradients returned to the caller, a caller-supplied `dy`, and everything in
 * higher-order (nested) gradient computations are left alone. Results are unchanged; only when memory
 * is released changes. And one tensor is never made: the zeros tfjs builds for an output the loss does not
 * use, where the kernel's gradient accepts null instead (`gradientKeepingNulls`).
 *
 * It relies on the engine's structure (tfjs-core 4.x: `addTapeNode`, `gradients`, `state.gradientDepth`),
 * checks it before changing anything, and can be turned off with GPT_FREE_GRADIENTS=0.
 */

interface TapeNode {
  id: number;
  saved?: tf.Tensor[];
  gradient?: (dys: Array<tf.Tensor | null>) => Record<string, () => tf.Tensor>;
}

interface EngineInternals {
  state: { gradientDepth: number; activeTape: TapeNode[] | null };
  addTapeNode: (...args: unknown[]) => void;
  gradients: (
    f: () => tf.Tensor,
    xs: tf.Tensor[],
    dy?: tf.Tensor,
    allowNoGradients?: boolean,
  ) => { value: tf.Tensor; grads: tf.Tensor[] };
  __gptFreeGradients?: boolean;
}

/** What the last processed node left behind, released when the backward pass reaches the next node. */
let pending: { dys: tf.Tensor[]; saved: tf.Tensor[]; results: Set<tf.Tensor> } | undefined;
/** `dy` passed by the caller of the current gradients() call: never ours to dispose. */
const callerDys: Array<tf.Tensor | undefined> = [];
/**
 * How many times a gradient function returned each tensor object. A gradient function may hand the same
 * object to two inputs (or pass its incoming dy straight through); such a tensor is disposed only when
 * the last of them is done with it.
 */
const returned = new WeakMap<tf.Tensor, number>();

function releasePending(): void {
  if (!pending) return;
  const { dys, saved, results } = pending;
  pending = undefined;
  const callerDy = callerDys[callerDys.length - 1];
  for (const dy of dys) {
    if (dy === callerDy || results.has(dy) || dy.isDisposed) continue; // results: passed through to an input
    const count = returned.get(dy) ?? 1;
    if (count > 1) returned.set(dy, count - 1);
    else dy.dispose();
  }
  for (const t of saved) t.dispose();
}

/** Installs the early release on the global engine (idempotent). Returns whether it is active. */
export function freeGradientMemoryEarly(): boolean {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.__gptFreeGradients) return true;
  const setting = typeof process !== "undefined" ? process.env?.GPT_FREE_GRADIENTS : undefined;
  if (setting === "0") return false;
  const looksRight =
    typeof engine.addTapeNode === "function" &&
    typeof engine.gradients === "function" &&
    typeof engine.state?.gradientDepth === "number" &&
    /tapeNode\.gradient\s*=/.test(engine.addTapeNode.toString()) &&
    /backpropagateGradients/.test(engine.gradients.toString());
  if (!looksRight) return false;

  const addTapeNode = engine.addTapeNode;
  engine.addTapeNode = function (this: EngineInternals, ...args: unknown[]): void {
    addTapeNode.apply(this, args);
    const tape = this.state.activeTape;
    const node = tape?.[tape.length - 1];
    if (!node?.gradient) return;
    const gradient = gradientKeepingNulls(args) ?? node.gradient;
    node.gradient = (dys) => {
      // Backprop is sequential: when this node's gradient is asked for, the previous node is finished.
      const outermost = this.state.gradientDepth === 0;
      if (outermost) releasePending();
      const thunks = gradient(dys);
      if (!outermost) return thunks;
      const record = {
        dys: dys.filter((dy): dy is tf.Tensor => dy != null),
        saved: node.saved ?? [],
        results: new Set<tf.Tensor>(),
      };
      node.saved = []; // the engine's own clean-up at the end must not see them twice
      pending = record;
      const wrapped: Record<string, () => tf.Tensor> = {};
      for (const [name, thunk] of Object.entries(thunks)) {
        wrapped[name] = () => {
          const dx = thunk();
          record.results.add(dx);
          returned.set(dx, (returned.get(dx) ?? 0) + 1);
          return dx;
        };
      }
      return wrapped;
    };
  };

  const gradients = engine.gradients;
  engine.gradients = function (this: EngineInternals, f, xs, dy, allowNoGradients) {
    const outermost = this.state.gradientDepth === 0;
    if (outermost) {
      releasePending();
      callerDys.push(dy);
    }
    try {
      return gradients.call(this, f, xs, dy, allowNoGradients);
    } finally {
      if (outermost) {
        releasePending(); // already disposed by the engine's tidy; dispose() is idempotent
        callerDys.pop();
      }
    }
  };
  engine.__gptFreeGradients = true;
  restore = () => {
    engine.addTapeNode = addTapeNode;
    engine.gradients = gradients;
    engine.__gptFreeGradients = false;
    pending = undefined;
  };
  return true;
}

/**
 * For an output the loss never reached, tfjs's tape hands the gradient function a tensor of zeros of that
 * output's shape, built in JavaScript and copied into the backend. Kernels that accept null there (our fused
 * kernels' extra outputs: attention's weights, GELU's tanh, `acceptsMissingOutputGradients`) get null:
 * the same gradient function called as the tape would call it, without the zeros. Undefined for other kernels.
 */
function gradientKeepingNulls(args: unknown[]): TapeNode["gradient"] {
  // the engine's addTapeNode(kernelName, inputs, outputs, gradientsFunc, saved, attrs)
  const [kernelName, , , , saved, attrs] = args as [string, unknown, unknown, unknown, tf.Tensor[], tf.NamedAttrMap];
  const config = acceptsMissingOutputGradients(kernelName) ? tf.getGradient(kernelName) : undefined;
  if (!config) return undefined;
  return (dys) =>
    config.gradFunc((dys.length > 1 ? dys : dys[0]) as tf.Tensor | tf.Tensor[], saved, attrs) as ReturnType<
      NonNullable<TapeNode["gradient"]>
    >;
}

let restore: (() => void) | undefined;

/** Undoes `freeGradientMemoryEarly` (for tests and measurements). */
export function keepGradientMemoryUntilEnd(): void {
  restore?.();
  restore = undefined;
}
