/**
 * crossEntropy (lib/training/loss.ts) against the float64 reference: the mean over non-ignored positions,
 * its hand-written gradient vs the analytic (softmax − onehot) / N and vs central finite differences, the
 * ignore index, and input errors. Runs on both the "cpu" and "wasm" backends.
 *
 * Relative error: max |lib − reference| / max(1, max |reference|) (tests/reference/helpers.ts).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { crossEntropy, IGNORE_INDEX, initBackend, tf } from "gpt-course";
import * as ref from "./reference/float64.js";
import { expectClose, nested, randomTensor, Rng, topIndices, values } from "./reference/helpers.js";

const B = 2,
  T = 5,
  V = 7;

/** Random logits (B, T, V) of scale 3 and targets with a few ignored positions. */
function problem(
  seed: number,
  ignored: Array<[number, number]> = [
    [0, 1],
    [1, 4],
  ],
) {
  const rng = new Rng(seed);
  const logits = randomTensor([B, T, V], rng, 3);
  const targetRows = Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(V)));
  for (const [b, t] of ignored) targetRows[b][t] = IGNORE_INDEX;
  const targets = tf.tensor2d(targetRows, [B, T], "int32");
  const flatLogits = (nested(logits) as number[][][]).flat();
  return { logits, targets, targetRows, flatLogits, flatTargets: targetRows.flat() };
}

describe.each(["wasm", "cpu"] as const)("crossEntropy on %s", (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it("IGNORE_INDEX is PyTorch's -100", () => {
    expect(IGNORE_INDEX).toBe(-100);
  });

  it("equals the reference: mean of −log softmax[target] over non-ignored positions", () => {
    const p = problem(1);
    const loss = crossEntropy(p.logits, p.targets);
    expect(loss.shape).toEqual([]);
    const expected = ref.crossEntropy(p.flatLogits, p.flatTargets);
    expect(Math.abs(loss.dataSync()[0] - expected.loss)).toBeLessThan(1e-5 * Math.max(1, expected.loss));
    // It is the mean over the 8 counted positions, not over all 10.
    const sumOver10 = (expected.loss * 8) / 10;
    expect(Math.abs(loss.dataSync()[0] - sumOver10)).toBeGreaterThan(1e-2);
    tf.dispose([p.logits, p.targets, loss]);
  });

  it("2-D logits (N, V) with 1-D targets, and a custom ignore index", () => {
    const rng = new Rng(2);
    const logits = randomTensor([6, V], rng, 2);
    const targetList = [0, 3, 6, 3, 1, 3];
    const targets = tf.tensor1d(targetList, "int32");
    const rows = nested(logits) as number[][];
    const plain = crossEntropy(logits, targets);
    expect(Math.abs(plain.dataSync()[0] - ref.crossEntropy(rows, targetList).loss)).toBeLessThan(1e-5);
    const ignore3 = crossEntropy(logits, targets, 3); // class 3 is ignored here
    expect(Math.abs(ignore3.dataSync()[0] - ref.crossEntropy(rows, targetList, 3).loss)).toBeLessThan(1e-5);
    tf.dispose([logits, targets, plain, ignore3]);
  });

  it("is stable for huge logits (no Inf/NaN)", () => {
    const logits = tf.tensor2d([
      [1000, -1000, 0],
      [-500, 500, 499],
    ]);
    const targets = tf.tensor1d([1, 2], "int32");
    const loss = crossEntropy(logits, targets);
    const expected = ref.crossEntropy(
      [
        [1000, -1000, 0],
        [-500, 500, 499],
      ],
      [1, 2],
    ).loss; // (2000 + 1.3133) / 2
    expect(Math.abs(loss.dataSync()[0] - expected)).toBeLessThan(1e-3);
    const grad = tf.grad((x: tf.Tensor) => crossEntropy(x, targets))(logits);
    expect(values(grad).every(Number.isFinite)).toBe(true);
    tf.dispose([logits, targets, loss, grad]);
  });

  it("uniform logits give ln V", () => {
    const logits = tf.zeros([3, 4, V]);
    const targets = tf.tensor2d(
      [
        [0, 1, 2, 3],
        [4, 5, 6, 0],
        [1, 1, 1, 1],
      ],
      [3, 4],
      "int32",
    );
    const loss = crossEntropy(logits, targets);
    expect(Math.abs(loss.dataSync()[0] - Math.log(V))).toBeLessThan(1e-6);
    tf.dispose([logits, targets, loss]);
  });

  it("all positions ignored → loss 0 and gradient 0, without NaN", () => {
    const p = problem(
      3,
      Array.from({ length: B * T }, (_, i) => [Math.floor(i / T), i % T] as [number, number]),
    );
    const { value, grads } = tf.valueAndGrads((x: tf.Tensor) => crossEntropy(x, p.targets))([p.logits]);
    expect(value.dataSync()[0]).toBe(0);
    expect(values(grads[0]).every((g) => g === 0)).toBe(true);
    tf.dispose([p.logits, p.targets, value, ...grads]);
  });

  it("gradient equals the analytic (softmax − onehot) / N, with 0 on ignored rows", () => {
    const p = problem(4);
    const grad = tf.grad((x: tf.Tensor) => crossEntropy(x, p.targets))(p.logits);
    expect(grad.shape).toEqual([B, T, V]);
    const expected = ref.crossEntropy(p.flatLogits, p.flatTargets).grad;
    expectClose((nested(grad) as number[][][]).flat(), expected, 1e-6, "gradient");
    const g = nested(grad) as number[][][];
    expect(g[0][1].every((v) => v === 0)).toBe(true);
    expect(g[1][4].every((v) => v === 0)).toBe(true);
    // Each counted row sums to 0 (softmax and one-hot both sum to 1).
    for (const row of g.flat()) expect(Math.abs(row.reduce((a, b) => a + b, 0))).toBeLessThan(1e-6);
    tf.dispose([p.logits, p.targets, grad]);
  });

  it("the upstream gradient is applied: ∂(3·loss) = 3·∂loss", () => {
    const p = problem(5);
    const g1 = tf.grad((x: tf.Tensor) => crossEntropy(x, p.targets))(p.logits);
    const g3 = tf.grad((x: tf.Tensor) => crossEntropy(x, p.targets).mul(3))(p.logits);
    const expected = (nested(g1) as number[][][]).map((m) => m.map((row) => row.map((v) => 3 * v)));
    expectClose(g3, expected, 1e-6);
    tf.dispose([p.logits, p.targets, g1, g3]);
  });

  it("gradient matches central finite differences (largest components and ignored ones)", () => {
    const p = problem(6);
    const grad = tf.grad((x: tf.Tensor) => crossEntropy(x, p.targets))(p.logits);
    const analytic = grad.dataSync().slice();
    const base = Float32Array.from(p.logits.dataSync());
    const lossAt = (data: Float32Array) =>
      tf.tidy(() => crossEntropy(tf.tensor(data, [B, T, V]), p.targets).dataSync()[0]);
    const ignoredStart = (0 * T + 1) * V; // row [0, 1] is ignored
    const indices = [...topIndices(analytic, 6), ignoredStart, ignoredStart + 3];
    const h = 1e-2;
    for (const index of indices) {
      const plus = base.slice();
      plus[index] += h;
      const minus = base.slice();
      minus[index] -= h;
      const numeric = (lossAt(plus) - lossAt(minus)) / (2 * h);
      expect(
        Math.abs(numeric - analytic[index]),
        `index ${index}: ${analytic[index]} vs ${numeric}`,
      ).toBeLessThanOrEqual(1e-2 * Math.abs(analytic[index]) + 1e-4);
    }
    expect(Math.abs(analytic[indices[0]])).toBeGreaterThan(1e-2);
    tf.dispose([p.logits, p.targets, grad]);
  });

  it("logits at ignored positions do not change the loss", () => {
    const p = problem(7);
    const before = crossEntropy(p.logits, p.targets);
    const data = p.logits.dataSync().slice();
    for (let v = 0; v < V; v++) {
      data[(0 * T + 1) * V + v] = 100 * (v - 3); // row [0, 1] is ignored
      data[(1 * T + 4) * V + v] = -50 * v; // row [1, 4] is ignored
    }
    const changed = tf.tensor(data, [B, T, V]);
    const after = crossEntropy(changed, p.targets);
    expect(after.dataSync()[0]).toBe(before.dataSync()[0]);
    tf.dispose([p.logits, p.targets, before, changed, after]);
  });

  it("leaves no tensors behind (forward and backward)", () => {
    const p = problem(8);
    const start = tf.memory().numTensors;
    const { value, grads } = tf.valueAndGrads((x: tf.Tensor) => crossEntropy(x, p.targets))([p.logits]);
    tf.dispose([value, ...grads]);
    expect(tf.memory().numTensors).toBe(start);
    tf.dispose([p.logits, p.targets]);
  });

  it("shape and dtype errors", () => {
    const logits = tf.zeros([2, 3, V]);
    const wrongShape = tf.zeros([2, 4], "int32");
    const flat = tf.zeros([6], "int32");
    const floats = tf.zeros([2, 3], "float32");
    expect(() => crossEntropy(logits, wrongShape)).toThrow(
      /targets of shape \[2,4\] do not match logits of shape \[2,3,7\]; targets must have the logits' shape without the last/,
    );
    expect(() => crossEntropy(logits, flat)).toThrow(/targets of shape \[6\] do not match logits of shape \[2,3,7\]/);
    expect(() => crossEntropy(logits, floats)).toThrow(/targets must be int32 token ids, got float32/);
    tf.dispose([logits, wrongShape, flat, floats]);
  });

  // A target id outside [0, V) (other than the ignore index) cannot be scored. Today it silently reads a
  // neighbouring row's logit through the flat gather (e.g. target V in row 0 is logits[1, 0]): the loss is
  // wrong, even negative, without any error.
  it("rejects target ids outside [0, V) that are not the ignore index", () => {
    const logits = tf.tensor2d([
      [0, 0, 0],
      [5, 0, 0],
    ]);
    for (const bad of [
      [3, 0],
      [0, -1],
      [1, 7],
    ]) {
      const targets = tf.tensor1d(bad, "int32");
      expect(() => crossEntropy(logits, targets).dispose(), `targets [${bad}]`).toThrow(/crossEntropy: .*target/);
      targets.dispose();
    }
    logits.dispose();
  });
});
