/**
 * The small toolkit every exercise's `checks.ts` is written with.
 *
 * A check runs the learner's code on random inputs and compares the result with gpt-course's own
 * implementation (or with a short independent computation). Random inputs matter: a check on one fixed
 * example can be passed by hard-coding its answer, a check on fresh random inputs only by doing the work.
 * The inputs come from a seeded generator, so a failure can be replayed with `--seed`.
 *
 * A check fails by throwing. `fail(message, hint)` gives a precise reason and, when the check can tell what
 * went wrong (the scale forgotten, the mask off by one), a hint aimed at that mistake; any other error
 * (including the learner's own) is reported with the check's general hint.
 */
import { type Module, type Random, tf } from "gpt-course";

/** One named check of an exercise. `Exports` is the type of the learner's module (the solution's exports). */
export interface Check<Exports> {
  /** What is checked, as a sentence: "encode gives gpt-course's ids on random text". */
  name: string;
  /** Shown under a failure when the failure itself carries no more specific hint. */
  hint: string;
  /** Throws (preferably with `fail`) when the learner's code is wrong. */
  run(exports: Exports, random: Random): void | Promise<void>;
}

export interface Exercise<Exports> {
  /** A title for listings: "A character tokenizer". */
  title: string;
  /** What the exercise teaches, in one line (also the README table's last column). */
  teaches: string;
  checks: Check<Exports>[];
}

/** Declares an exercise; `Exports` is normally `typeof import("./solution.js")`. */
export function defineExercise<Exports>(exercise: Exercise<Exports>): Exercise<Exports> {
  return exercise;
}

/**
 * Compile-time check that a starter offers what the checks need: `Conforms<typeof import("./starter.js"),
 * Exports>` is a type error when the starter's exports do not match the solution's.
 */
export type Conforms<Starter extends Exports, Exports> = Starter;

/** A failed check: `message` says what differs, `hint` (optional) how to fix it. */
export class CheckFailure extends Error {
  override name = "CheckFailure";
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function fail(message: string, hint?: string): never {
  throw new CheckFailure(message, hint);
}

const describeParameters = (module: Module): string[] =>
  module.namedParameters().map(([name, p]) => `${name} [${p.shape.join(", ")}]`);

/**
 * Fails unless `mine` has exactly the parameters (names and shapes) of `reference`, listing the missing and the
 * unexpected ones. `what` names the learner's module ("your Block"), `referenceName` the reference ("GPT-2").
 */
export function expectSameParameters(mine: Module, reference: Module, what: string, referenceName: string): void {
  const have = new Set(describeParameters(mine));
  const want = new Set(describeParameters(reference));
  const missing = [...want].filter((p) => !have.has(p));
  const extra = [...have].filter((p) => !want.has(p));
  if (missing.length > 0 || extra.length > 0) {
    fail(
      `${what}'s parameters differ from ${referenceName}'s.` +
        (missing.length > 0 ? `\nmissing: ${missing.join("; ")}` : "") +
        (extra.length > 0 ? `\nunexpected: ${extra.join("; ")}` : ""),
    );
  }
}

/** Copies parameter values by name, the way a checkpoint is loaded; `referenceName` names where they come from. */
export function copyParameters(from: Module, to: Module, referenceName: string): void {
  const source = new Map(from.namedParameters());
  for (const [name, parameter] of to.namedParameters()) {
    const value = source.get(name);
    if (!value || value.shape.join() !== parameter.shape.join()) {
      fail(
        `your parameter "${name}" [${parameter.shape}] has no counterpart in ${referenceName}: fix the names and shapes first.`,
      );
    }
    parameter.assign(value);
  }
}

/**
 * Marks an unfinished part of a starter file: throws "TODO: <what>". The inputs are passed only so that
 * TypeScript does not report the starter's parameters as unused; delete the call when you write the code.
 */
export function todo(what: string, ..._inputs: unknown[]): never {
  throw new Error(`TODO: ${what}`);
}

/** True for the error `todo()` throws (and any error whose message starts with "TODO"). */
export function isTodo(error: unknown): boolean {
  return error instanceof Error && /^TODO\b/.test(error.message);
}

// ---------------------------------------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------------------------------------

/** A uniform integer in [min, max], both included. */
export function randomInt(random: Random, min: number, max: number): number {
  return min + random.int(max - min + 1);
}

/** A uniform float in [min, max). */
export function randomFloat(random: Random, min: number, max: number): number {
  return min + random.next() * (max - min);
}

export function randomChoice<T>(random: Random, items: readonly T[]): T {
  return items[random.int(items.length)] as T;
}

/** A float32 tensor of normal samples with standard deviation `std` (mean `mean`). */
export function randomTensor(random: Random, shape: number[], std = 1, mean = 0): tf.Tensor {
  return tf.randomNormal(shape, mean, std, "float32", random.seed());
}

// ---------------------------------------------------------------------------------------------------------
// Comparisons with messages a learner can act on
// ---------------------------------------------------------------------------------------------------------

const describeShape = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/** `value` as a tensor, or a failure that says what came back instead. */
export function expectTensor(value: unknown, what: string): tf.Tensor {
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) fail(`${what} is a tensor that has already been disposed.`, TIDY_HINT);
    return value;
  }
  const got = value === undefined ? "undefined" : Array.isArray(value) ? "an array" : typeof value;
  return fail(`${what} should be a tf.Tensor, got ${got}.`);
}

const TIDY_HINT =
  "A tensor created inside tf.tidy() is disposed when tidy returns, unless it is what the callback returns " +
  "(or is wrapped in tf.keep()).";

export function expectShape(tensor: tf.Tensor, shape: readonly number[], what: string, hint?: string): void {
  if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
    fail(`${what} has shape ${describeShape(tensor.shape)}, expected ${describeShape(shape)}.`, hint);
  }
}

export interface CloseOptions {
  /** Allowed absolute difference (default 1e-4, right for float32 computed in a different order). */
  atol?: number;
  /** Allowed difference relative to the expected value (default 1e-4). */
  rtol?: number;
  /** Hint to attach when the values differ. */
  hint?: string;
}

/** Where the two differ most, or undefined when every value is within tolerance. */
function largestDifference(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-4, rtol = 1e-4 }: CloseOptions,
): { index: number; actual: number; expected: number } | undefined {
  let worst: { index: number; actual: number; expected: number; excess: number } | undefined;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    const allowed = atol + rtol * Math.abs(e);
    // NaN fails every comparison, so test "not within" rather than "beyond".
    const excess = Number.isNaN(a) || !Number.isFinite(a) ? Infinity : Math.abs(a - e) - allowed;
    if (!(excess <= 0) && (worst === undefined || excess > worst.excess))
      worst = { index: i, actual: a, expected: e, excess };
  }
  return worst;
}

/** Row-major index → multi-index, for messages ("at [0, 2, 1]"). */
function unravel(index: number, shape: readonly number[]): number[] {
  const position: number[] = [];
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const size = shape[axis] as number;
    position.unshift(index % size);
    index = Math.floor(index / size);
  }
  return position;
}

const formatNumber = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(6));

/** Fails unless `actual` (a tensor) has `expected`'s shape and values (within tolerance). */
export function expectClose(actual: unknown, expected: tf.Tensor, what: string, options: CloseOptions = {}): void {
  const tensor = expectTensor(actual, what);
  expectShape(tensor, expected.shape, what, options.hint);
  const worst = largestDifference(tensor.dataSync(), expected.dataSync(), options);
  if (worst) {
    const where = expected.rank > 0 ? ` at ${describeShape(unravel(worst.index, expected.shape))}` : "";
    fail(
      `${what}:${where} yours is ${formatNumber(worst.actual)}, expected ${formatNumber(worst.expected)}.`,
      options.hint,
    );
  }
}

/** Like `expectClose` for plain arrays of numbers. */
export function expectCloseArrays(
  actual: unknown,
  expected: ArrayLike<number>,
  what: string,
  options: CloseOptions = {},
): void {
  if (!Array.isArray(actual) && !ArrayBuffer.isView(actual)) {
    fail(`${what} should be an array of numbers, got ${actual === undefined ? "undefined" : typeof actual}.`);
  }
  const values = actual as ArrayLike<number>;
  if (values.length !== expected.length) {
    fail(`${what} has ${values.length} entries, expected ${expected.length}.`, options.hint);
  }
  const worst = largestDifference(values, expected, options);
  if (worst) {
    fail(
      `${what}: at index ${worst.index} yours is ${formatNumber(worst.actual)}, expected ${formatNumber(worst.expected)}.`,
      options.hint,
    );
  }
}

/** Fails unless two arrays (of ids, strings...) are equal, naming the first difference. */
export function expectEqualArrays<T>(actual: unknown, expected: readonly T[], what: string, hint?: string): void {
  if (!Array.isArray(actual)) {
    fail(`${what} should be an array, got ${actual === undefined ? "undefined" : typeof actual}.`, hint);
  }
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (!Object.is(actual[i], expected[i])) {
      fail(
        `${what}: at index ${i} yours is ${JSON.stringify(actual[i])}, expected ${JSON.stringify(expected[i])}.`,
        hint,
      );
    }
  }
  if (actual.length !== expected.length) {
    fail(`${what} has ${actual.length} entries, expected ${expected.length}.`, hint);
  }
}

/** True when two tensors of the same shape agree within tolerance (for diagnosing a likely mistake). */
export function allClose(a: tf.Tensor, b: tf.Tensor, atol = 1e-4, rtol = 1e-4): boolean {
  if (a.shape.join() !== b.shape.join()) return false;
  return largestDifference(a.dataSync(), b.dataSync(), { atol, rtol }) === undefined;
}

/**
 * Runs `f`, which must throw a real error (not a TODO). Returns the error, so a check can also look at
 * its message.
 */
export function expectThrows(f: () => unknown, what: string, hint?: string): Error {
  try {
    f();
  } catch (error) {
    if (isTodo(error)) throw error;
    return error as Error;
  }
  return fail(`${what} should throw an error, but it returned normally.`, hint);
}

/** Like `expectThrows`, for an async function. */
export async function expectRejects(f: () => Promise<unknown>, what: string, hint?: string): Promise<Error> {
  try {
    await f();
  } catch (error) {
    if (isTodo(error)) throw error;
    return error as Error;
  }
  return fail(`${what} should throw an error, but it returned normally.`, hint);
}
