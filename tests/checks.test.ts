import { describe, expect, it } from "vitest";
import { assertClose, expectError, maxAbsDiff, tf } from "gpt-course";

describe("checks for notebooks and exercises", () => {
  it("maxAbsDiff and assertClose compare element by element", () => {
    const a = tf.tensor([1, 2, 3]);
    const b = tf.tensor([1, 2.5, 3]);
    expect(maxAbsDiff(a, b)).toBeCloseTo(0.5, 6);
    expect(() => assertClose(a, b, "a vs b", 0.1)).toThrow(/a vs b: largest \|difference\| 0.5 > 0.1/);
    expect(() => assertClose(a, b, "a vs b", 1)).not.toThrow();
    expect(() => maxAbsDiff(a, tf.tensor([1, 2]))).toThrow(/shapes differ/);
    tf.dispose([a, b]);
  });

  it("expectError returns the message, and fails when nothing is thrown or the message is another", () => {
    expect(
      expectError(() => {
        throw new Error("bad size");
      }, /size/),
    ).toBe("bad size");
    expect(() => expectError(() => 1)).toThrow(/expected an error, but none was thrown/);
    expect(() =>
      expectError(() => {
        throw new Error("other");
      }, /size/),
    ).toThrow(/expected an error matching \/size\/, got: other/);
  });
});
