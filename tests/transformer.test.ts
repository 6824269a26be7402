/**
 * EncoderDecoderTransformer (lib/models/transformer.ts): forward vs the float64 reference, shapes, source
 * padding (zero attention, no influence, same result as the unpadded sequence), decoder causality, the
 * sinusoidal position table, and a toy copy task it learns.
 *
 * Relative error: max |lib − reference| / max(1, max |reference|) (tests/reference/helpers.ts).
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  crossEntropy,
  defaultTransformerConfig,
  EncoderDecoderTransformer,
  initBackend,
  sinusoidalPositions,
  tf,
  type TransformerConfig,
} from "gpt-course";
import * as ref from "./reference/float64.js";
import {
  expectClose,
  maxAbsDiff,
  nested,
  randomIds,
  randomizeParameters,
  readParams,
  Rng,
} from "./reference/helpers.js";

const small: Partial<TransformerConfig> = {
  sourceVocabSize: 9,
  targetVocabSize: 11,
  contextLength: 10,
  numLayers: 2,
  numHeads: 2,
  embeddingDim: 8,
  seed: 5,
};

function ids(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, [rows.length, rows[0].length], "int32");
}

type M3 = number[][][];
type M4 = number[][][][];

function collector() {
  return { encoder: [] as tf.Tensor[], decoderSelf: [] as tf.Tensor[], decoderCross: [] as tf.Tensor[] };
}

function disposeCollected(attention: ReturnType<typeof collector>): void {
  tf.dispose([...attention.encoder, ...attention.decoderSelf, ...attention.decoderCross]);
}

beforeAll(async () => {
  await initBackend();
});

describe("EncoderDecoderTransformer", () => {
  it("default config; numHeads must divide embeddingDim", () => {
    expect(defaultTransformerConfig).toMatchObject({ numHeads: 4, embeddingDim: 64, preNorm: true, dropout: 0 });
    expect(() => new EncoderDecoderTransformer({ embeddingDim: 10, numHeads: 4 })).toThrow(
      /embeddingDim \(10\) must be divisible by numHeads \(4\)/,
    );
  });

  it("shapes of encode, decode, forward and the collected attention weights", () => {
    const model = new EncoderDecoderTransformer(small);
    const rng = new Rng(1);
    const src = ids(randomIds(3, 7, 9, rng));
    const tgt = ids(randomIds(3, 5, 11, rng));
    const memory = model.encode(src);
    expect(memory.shape).toEqual([3, 7, 8]);
    const attention = collector();
    const logits = model.forward(src, tgt, { attention });
    expect(logits.shape).toEqual([3, 5, 11]);
    expect(attention.encoder.map((t) => t.shape)).toEqual([
      [3, 2, 7, 7],
      [3, 2, 7, 7],
    ]);
    expect(attention.decoderSelf.map((t) => t.shape)).toEqual([
      [3, 2, 5, 5],
      [3, 2, 5, 5],
    ]);
    expect(attention.decoderCross.map((t) => t.shape)).toEqual([
      [3, 2, 5, 7],
      [3, 2, 5, 7],
    ]);
    const decoded = model.decode(tgt, memory);
    expectClose(decoded, nested(logits), 1e-6, "decode(encode(src)) = forward");
    tf.dispose([src, tgt, memory, logits, decoded]);
    disposeCollected(attention);
    const tooLong = ids([Array.from({ length: 11 }, () => 1)]);
    expect(() => model.encode(tooLong)).toThrow(/sequence of 11 tokens is longer than contextLength 10/);
    tooLong.dispose();
    model.dispose();
  });

  it.each([true, false])(
    "forward vs float64 reference (preNorm=%s, random parameters, with and without padding)",
    (preNorm) => {
      const model = new EncoderDecoderTransformer({ ...small, preNorm });
      randomizeParameters(model, 20);
      const params = readParams(model);
      const rng = new Rng(21);
      const srcRows = randomIds(2, 6, 9, rng);
      const tgtRows = randomIds(2, 5, 11, rng);
      const maskRows = [
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 0],
      ];
      const [src, tgt, sourceMask] = [ids(srcRows), ids(tgtRows), tf.tensor2d(maskRows, [2, 6], "int32")];
      const config = { numLayers: 2, numHeads: 2, eps: 1e-5, activation: "gelu" as const, preNorm };
      const logits = model.forward(src, tgt);
      expectClose(logits, ref.encoderDecoderForward(srcRows, tgtRows, params, config), 1e-4, "no mask");
      const masked = model.forward(src, tgt, { sourceMask });
      expectClose(masked, ref.encoderDecoderForward(srcRows, tgtRows, params, config, maskRows), 1e-4, "masked");
      tf.dispose([src, tgt, sourceMask, logits, masked]);
      model.dispose();
    },
  );

  describe("source padding", () => {
    const srcRows = [
      [3, 1, 4, 1, 5, 0, 0],
      [2, 7, 1, 8, 2, 8, 1],
    ];
    const maskRows = [
      [1, 1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1, 1],
    ];
    const tgtRows = [
      [1, 5, 9, 2],
      [6, 5, 3, 5],
    ];

    it("padded source positions get exactly zero attention (encoder and cross-attention)", () => {
      const model = new EncoderDecoderTransformer(small);
      randomizeParameters(model, 30);
      const [src, tgt, sourceMask] = [ids(srcRows), ids(tgtRows), tf.tensor2d(maskRows, [2, 7], "int32")];
      const attention = collector();
      const logits = model.forward(src, tgt, { sourceMask, attention });
      for (const [kind, list] of [
        ["encoder", attention.encoder],
        ["cross", attention.decoderCross],
      ] as const) {
        expect(list).toHaveLength(2);
        for (const w of list) {
          const weights = nested(w) as M4;
          for (const [b, perHead] of weights.entries()) {
            for (const m of perHead) {
              for (const row of m) {
                expect(Math.abs(row.reduce((s, p) => s + p, 0) - 1)).toBeLessThan(1e-5);
                row.forEach((p, j) => {
                  if (maskRows[b][j] === 0) expect(p, `${kind} weight on padded key ${j}`).toBe(0);
                  else expect(p, `${kind} weight on real key ${j}`).toBeGreaterThan(0);
                });
              }
            }
          }
        }
      }
      tf.dispose([src, tgt, sourceMask, logits]);
      disposeCollected(attention);
      model.dispose();
    });

    it("changing a padded token does not change the logits; changing a real one does", () => {
      const model = new EncoderDecoderTransformer(small);
      randomizeParameters(model, 31);
      const sourceMask = tf.tensor2d(maskRows, [2, 7], "int32");
      const tgt = ids(tgtRows);
      const run = (rows: number[][]) => {
        const src = ids(rows);
        const logits = model.forward(src, tgt, { sourceMask });
        const out = nested(logits) as M3;
        tf.dispose([src, logits]);
        return out;
      };
      const base = run(srcRows);
      const paddedChanged = run([[3, 1, 4, 1, 5, 8, 6], srcRows[1]]);
      expect(maxAbsDiff(paddedChanged, base)).toBeLessThan(1e-6);
      const realChanged = run([[3, 1, 4, 1, 6, 0, 0], srcRows[1]]);
      expect(maxAbsDiff(realChanged[0], base[0])).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(realChanged[1], base[1])).toBeLessThan(1e-6);
      // Without the mask, the padding tokens do influence the result (so the mask is what hides them).
      const src = ids(srcRows);
      const unmasked = model.forward(src, tgt);
      expect(maxAbsDiff(nested(unmasked), base)).toBeGreaterThan(1e-3);
      tf.dispose([sourceMask, tgt, src, unmasked]);
      model.dispose();
    });

    it("a padded sequence gives the same logits as the unpadded one alone", () => {
      const model = new EncoderDecoderTransformer(small);
      randomizeParameters(model, 32);
      const [src, tgt, sourceMask] = [ids(srcRows), ids(tgtRows), tf.tensor2d(maskRows, [2, 7], "int32")];
      const full = model.forward(src, tgt, { sourceMask });
      const padded = (nested(full) as M3)[0];
      const [shortSrc, shortTgt] = [ids([srcRows[0].slice(0, 5)]), ids([tgtRows[0]])];
      const alone = model.forward(shortSrc, shortTgt);
      expectClose(alone, [padded], 1e-5);
      tf.dispose([src, tgt, sourceMask, full, shortSrc, shortTgt, alone]);
      model.dispose();
    });
  });

  it("the decoder is causal: changing target token t changes no logits before t, and changes position t", () => {
    const model = new EncoderDecoderTransformer(small);
    randomizeParameters(model, 40);
    const rng = new Rng(41);
    const srcRows = randomIds(1, 6, 9, rng);
    const tgtRows = randomIds(1, 6, 11, rng);
    const src = ids(srcRows);
    const run = (rows: number[][]) => {
      const tgt = ids(rows);
      const logits = model.forward(src, tgt);
      const out = (nested(logits) as M3)[0];
      tf.dispose([tgt, logits]);
      return out;
    };
    const base = run(tgtRows);
    for (let t = 0; t < 6; t++) {
      const changed = [tgtRows[0].slice()];
      changed[0][t] = (changed[0][t] + 3) % 11;
      const out = run(changed);
      for (let s = 0; s < t; s++) expect(maxAbsDiff(out[s], base[s]), `t=${t}, position ${s}`).toBeLessThan(1e-6);
      expect(maxAbsDiff(out[t], base[t]), `t=${t}, position ${t}`).toBeGreaterThan(1e-3);
    }
    src.dispose();
    model.dispose();
  });

  it("sinusoidalPositions matches PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(…)", () => {
    for (const [length, dim] of [
      [12, 8],
      [5, 7],
      [3, 1],
      [50, 64],
    ]) {
      const table = sinusoidalPositions(length, dim);
      expect(table.shape).toEqual([length, dim]);
      expectClose(table, ref.sinusoidal(length, dim), 1e-6, `(${length}, ${dim})`);
      table.dispose();
    }
    // Spot values: position 0 is (0, 1, 0, 1, ...); position 1, channel 0 is sin 1; channel 3 of d=8 is cos(1/10000^(2/8)).
    const table = sinusoidalPositions(2, 8);
    const rows = nested(table) as number[][];
    expect(rows[0]).toEqual([0, 1, 0, 1, 0, 1, 0, 1]);
    expect(rows[1][0]).toBeCloseTo(Math.sin(1), 6);
    expect(rows[1][3]).toBeCloseTo(Math.cos(1 / 10), 6);
    table.dispose();
  });

  it("learns a toy copy task: the loss drops clearly in 60 Adam steps", () => {
    const model = new EncoderDecoderTransformer({
      sourceVocabSize: 10,
      targetVocabSize: 10,
      contextLength: 8,
      numLayers: 1,
      numHeads: 2,
      embeddingDim: 32,
      seed: 7,
    });
    const rng = new Rng(50);
    const BOS = 1;
    const sequences = Array.from({ length: 32 }, () => Array.from({ length: 6 }, () => 2 + rng.int(8)));
    const src = ids(sequences);
    const decoderInput = ids(sequences.map((s) => [BOS, ...s.slice(0, -1)]));
    const targets = ids(sequences);
    const optimizer = tf.train.adam(1e-2);
    const losses: number[] = [];
    for (let step = 0; step < 60; step++) {
      const cost = optimizer.minimize(() => crossEntropy(model.forward(src, decoderInput), targets), true) as tf.Scalar;
      losses.push(cost.dataSync()[0]);
      cost.dispose();
    }
    const first = losses[0];
    const last = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    expect(Math.abs(first - Math.log(10)), `first loss ${first}`).toBeLessThan(0.5);
    expect(last, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`).toBeLessThan(Math.min(0.25, 0.2 * first));
    optimizer.dispose();
    tf.dispose([src, decoderInput, targets]);
    model.dispose();
  });
});
