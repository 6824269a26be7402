/**
 * Test helpers that bridge TensorFlow.js tensors and the plain float64 reference (float64.ts): seeded
 * random numbers, randomising every parameter of a module, reading parameters by name, and comparing
 * nested arrays with the relative error used throughout the suite:
 *
 *   relError(actual, expected) = max |actual − expected| / max(1, max |expected|)
 *
 * (absolute error for values of magnitude ≤ 1, relative to the largest expected magnitude above that).
 */
import { expect } from "vitest";
import { type Module, tf } from "gpt-course";
import type { Params } from "./float64.js";

/** Mulberry32-based seeded generator, independent of lib's Random. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = Math.max(this.uniform(), 1e-12);
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
  normals(count: number, std = 1, mean = 0): number[] {
    return Array.from({ length: count }, () => mean + std * this.normal());
  }
}

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A float32 tensor of N(mean, std²) values from a seeded generator. */
export function randomTensor(shape: number[], rng: Rng, std = 1, mean = 0): tf.Tensor {
  return tf.tensor(rng.normals(product(shape), std, mean), shape, "float32");
}

/** Random int32 ids in [0, n) of the given 2-D shape, as a nested array. */
export function randomIds(rows: number, cols: number, n: number, rng: Rng): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.int(n)));
}

/**
 * Gives every parameter a fresh random value, so no mapping bug can hide behind lib's initialisation
 * (LayerNorm weight = 1, biases = 0):
 *   1-D "…weight" (LayerNorm γ): 1 + N(0, 0.3²);  1-D biases: N(0, 0.3²);
 *   2-D embedding tables (wte, wpe, *_embedding): N(0, 0.5²);  other 2-D weights (in, out): N(0, 1/in).
 */
export function randomizeParameters(module: Module, seed: number): void {
  const rng = new Rng(seed);
  for (const [name, variable] of module.namedParameters()) {
    const shape = variable.shape;
    let values: number[];
    if (shape.length === 1) {
      values = name.endsWith("weight") ? rng.normals(variable.size, 0.3, 1) : rng.normals(variable.size, 0.3);
    } else if (/(^|\.)(wte|wpe)\.|_embedding\./.test(name)) {
      values = rng.normals(variable.size, 0.5);
    } else {
      values = rng.normals(variable.size, 1 / Math.sqrt(shape[0]));
    }
    const value = tf.tensor(values, shape, "float32");
    variable.assign(value);
    value.dispose();
  }
}

/** Every parameter of a module by its dotted name, copied out of TensorFlow.js. */
export function readParams(module: Module): Params {
  const params: Params = {};
  for (const [name, variable] of module.namedParameters()) {
    params[name] = { shape: [...variable.shape], data: Float64Array.from(variable.dataSync()) };
  }
  return params;
}

export type Nested = number | Nested[];

export function shapeOf(value: Nested): number[] {
  const shape: number[] = [];
  let current: Nested = value;
  while (Array.isArray(current)) {
    shape.push(current.length);
    current = current[0] as Nested;
  }
  return shape;
}

export function flatten(value: Nested): number[] {
  return Array.isArray(value) ? value.flatMap((v) => flatten(v)) : [value];
}

/** max |actual − expected| / max(1, max |expected|). */
export function relError(actual: Nested, expected: Nested): number {
  const a = flatten(actual);
  const b = flatten(expected);
  if (a.length !== b.length) throw new Error(`relError: ${a.length} values vs ${b.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i] - b[i]);
    if (!(diff <= maxDiff)) maxDiff = diff; // NaN propagates
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return maxDiff / Math.max(1, maxRef);
}

export function maxAbsDiff(actual: Nested, expected: Nested): number {
  const a = flatten(actual);
  const b = flatten(expected);
  if (a.length !== b.length) throw new Error(`maxAbsDiff: ${a.length} values vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i] - b[i]);
    if (!(diff <= max)) max = diff;
  }
  return max;
}

/** The tensor as nested arrays (the tensor is not disposed). */
export function nested(t: tf.Tensor): Nested {
  return t.arraySync() as Nested;
}

/** Asserts equal shapes and relError < tolerance, with a message that says by how much it failed. */
export function expectClose(actual: tf.Tensor | Nested, expected: Nested, tolerance = 1e-4, what = "values"): void {
  const a = actual instanceof tf.Tensor ? nested(actual) : actual;
  expect(shapeOf(a), `${what}: shape`).toEqual(shapeOf(expected));
  const error = relError(a, expected);
  expect(error, `${what}: relative error ${error.toExponential(2)} ≥ ${tolerance}`).toBeLessThan(tolerance);
}

/** Runs `f` (which creates tensors) and checks it leaves no tensor behind. Returns f's result. */
export function expectNoLeak<T>(f: () => T, what = "tensors"): T {
  const before = tf.memory().numTensors;
  const result = f();
  expect(tf.memory().numTensors, `${what}: tensors leaked`).toBe(before);
  return result;
}

/** Flat float64 copy of a tensor. */
export function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}

/** Sets one element (flat index) of a variable. */
export function setElement(variable: tf.Variable, index: number, value: number): void {
  const data = variable.dataSync().slice();
  data[index] = value;
  const t = tf.tensor(data, variable.shape, variable.dtype);
  variable.assign(t);
  t.dispose();
}

/** Indices of the k largest |values|. */
export function topIndices(data: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: data.length }, (_, i) => i)
    .sort((a, b) => Math.abs(data[b]) - Math.abs(data[a]))
    .slice(0, k);
}

/**
 * Central finite differences (f(θ + h) − f(θ − h)) / 2h on chosen elements of a variable, f evaluated in
 * float32 by TensorFlow.js. The variable is restored afterwards.
 */
export function finiteDifferences(variable: tf.Variable, indices: number[], f: () => number, step = 1e-2): number[] {
  const original = variable.dataSync().slice();
  const result = indices.map((index) => {
    setElement(variable, index, original[index] + step);
    const plus = f();
    setElement(variable, index, original[index] - step);
    const minus = f();
    setElement(variable, index, original[index]);
    return (plus - minus) / (2 * step);
  });
  const restored = tf.tensor(original, variable.shape, variable.dtype);
  variable.assign(restored);
  restored.dispose();
  return result;
}
