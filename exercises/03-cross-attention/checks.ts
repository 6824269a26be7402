/**
 * Checks for 03-cross-attention: the padding mask's shape, cross-attention against gpt-course's
 * `CrossAttention` (random weights and biases, a decoder and a source of different
 * lengths, with and without a padding mask), and the decoder block against gpt-course's `DecoderBlock` with
 * cross-attention, weights copied in by name. Common mistakes (a causal mask, keys and values swapped, the mask
 * upside down, the wrong order of sub-layers, normalising the encoder's output) are recognised and named.
 */
import { causalMask, CrossAttention, DecoderBlock as LibDecoderBlock, type Module, Random, tf } from "gpt-course";
import {
  allClose,
  type Conforms,
  copyParameters,
  defineExercise,
  expectClose,
  expectSameParameters,
  expectShape,
  expectTensor,
  fail,
  randomChoice,
  randomInt,
  randomTensor,
} from "../harness/check.js";
import { type BlockSettings, blockConfig, type CrossAttentionParameters } from "./solution.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** Random sizes: a decoder of T positions and a source of S ≠ T positions (shorter or longer), so mixing them up shows. */
function randomSizes(random: Random): BlockSettings & { B: number; T: number; S: number } {
  const numHeads = randomChoice(random, [1, 2, 4]);
  const T = randomInt(random, 2, 6);
  const S = T + randomChoice(random, T > 3 ? [-3, -2, -1, 1, 2, 3] : [-1, 1, 2, 3]);
  return { B: randomInt(random, 1, 3), T, S, numHeads, embeddingDim: numHeads * randomInt(random, 2, 5) };
}

/** (B, S) of 1/0: each row's first L_b tokens are real (L_b ≥ 1), the rest padding; at least one row is padded. */
function randomSourceMask(random: Random, B: number, S: number): { mask: tf.Tensor; lengths: number[] } {
  const lengths = Array.from({ length: B }, () => randomInt(random, 1, S));
  if (lengths.every((L) => L === S)) lengths[random.int(B)] = randomInt(random, 1, S - 1);
  const values = lengths.flatMap((L) => Array.from({ length: S }, (_, s) => (s < L ? 1 : 0)));
  return { mask: tf.tensor2d(values, [B, S], "int32"), lengths };
}

/** gpt-course's cross-attention layer with random weights and biases (not the small init, so every mistake shows). */
function referenceLayer(random: Random, settings: BlockSettings): CrossAttention {
  const layer = new CrossAttention(blockConfig(settings), new Random(random.seed()));
  for (const parameter of layer.parameters()) parameter.assign(randomTensor(random, parameter.shape, 0.4));
  return layer;
}

function parametersOf(layer: CrossAttention): CrossAttentionParameters {
  const pair = (linear: { weight: tf.Tensor; bias?: tf.Tensor }) => ({
    weight: linear.weight,
    bias: linear.bias as tf.Tensor,
  });
  return {
    q_attn: pair(layer.q_attn),
    c_attn: pair(layer.c_attn),
    c_proj: pair(layer.c_proj),
  };
}

/** The same layer computed with a wrong recipe, to name the mistake when the learner's output matches it. */
function diagnoseCrossAttention(
  result: tf.Tensor,
  layer: CrossAttention,
  x: tf.Tensor,
  source: tf.Tensor,
  sourceMask?: tf.Tensor,
): string | undefined {
  const mask = sourceMask ? sourceMask.toFloat().reshape([sourceMask.shape[0] as number, 1, 1, -1]) : undefined;
  const withKeysAndValuesSwapped = (): CrossAttention => {
    const other = new CrossAttention(layer.config, new Random(1));
    const own = new Map(layer.namedParameters());
    for (const [name, parameter] of other.namedParameters()) {
      let value = own.get(name) as tf.Tensor;
      if (name.startsWith("c_attn.")) value = tf.concat(tf.split(value, 2, -1).reverse(), -1);
      parameter.assign(value);
    }
    return other;
  };
  const [T, S] = [x.shape[1] as number, source.shape[1] as number];
  const causal = mask ? causalMask(T, S).mul(mask) : causalMask(T, S);
  const variants: Array<[() => tf.Tensor, string]> = [
    [
      () => layer.forward(x, source, { mask: causal }),
      "You applied a causal mask. Cross-attention is never causal: the source is given whole before the decoder " +
        "writes anything, so every decoder position may read every source position (only padding is hidden).",
    ],
    [
      () => withLayer(withKeysAndValuesSwapped(), (l) => l.forward(x, source, { mask })),
      "Keys and values are swapped: c_attn's first C output columns make the keys, the last C the values " +
        "(tf.split(..., 2, -1) returns [keys, values]).",
    ],
  ];
  if (mask) {
    variants.push(
      [
        () => layer.forward(x, source),
        "The mask is ignored: pass mask = sourcePaddingMask(sourceMask) to scaledDotProductAttention.",
      ],
      [
        () => layer.forward(x, source, { mask: tf.sub(1, mask) }),
        "The mask is upside down: 1 marks a real source token (may be attended to), 0 marks padding (masked).",
      ],
    );
  }
  for (const [variant, hint] of variants) if (allClose(result, variant())) return hint;
  return undefined;
}

function withLayer<T>(layer: CrossAttention, f: (layer: CrossAttention) => T): T {
  try {
    return f(layer);
  } finally {
    layer.dispose();
  }
}

function checkCrossAttention({ crossAttention }: Exports, random: Random, masked: boolean): void {
  const settings = randomSizes(random);
  const { B, T, S, embeddingDim: C, numHeads } = settings;
  const layer = referenceLayer(random, settings);
  try {
    const x = randomTensor(random, [B, T, C]);
    const source = randomTensor(random, [B, S, C]);
    const sourceMask = masked ? randomSourceMask(random, B, S).mask : undefined;
    const what = `crossAttention(x [${x.shape}], encoderOutput [${source.shape}], params, ${numHeads} heads${masked ? ", sourceMask" : ""})`;
    const result = expectTensor(crossAttention(x, source, parametersOf(layer), numHeads, sourceMask), what);
    expectShape(
      result,
      [B, T, C],
      what,
      result.shape[1] === S
        ? "One output per *decoder* position: the queries come from x (the decoder), the keys and values from the encoder."
        : undefined,
    );
    const expected = layer.forward(x, source, { mask: sourceMask?.toFloat().reshape([B, 1, 1, S]) });
    const hint = allClose(result, expected) ? undefined : diagnoseCrossAttention(result, layer, x, source, sourceMask);
    expectClose(result, expected, what, { hint });
  } finally {
    layer.dispose();
  }
}

/** Random values for every parameter (LayerNorm weights around 1), so that every wiring mistake shows. */
function randomise(module: Module, random: Random): void {
  for (const [name, parameter] of module.namedParameters()) {
    const isNormWeight = /ln_[a-z_\d]+\.weight$/.test(name);
    parameter.assign(randomTensor(random, parameter.shape, isNormWeight ? 0.2 : 0.3, isNormWeight ? 1 : 0));
  }
}

function libBlock(settings: BlockSettings, random: Random): LibDecoderBlock {
  return new LibDecoderBlock({ ...blockConfig(settings), crossAttention: true }, random);
}

/** Wrong wirings of the reference block's own modules, each with the hint that names it. */
function diagnoseBlock(
  result: tf.Tensor,
  block: LibDecoderBlock,
  x: tf.Tensor,
  source: tf.Tensor,
  mask: tf.Tensor,
): string | undefined {
  const cross = block.crossattention as CrossAttention;
  const lnCross = block.ln_cross_attn as { forward(x: tf.Tensor): tf.Tensor };
  const selfStep = (h: tf.Tensor) => h.add(block.attn.forward(block.ln_1.forward(h)));
  const crossStep = (h: tf.Tensor, norm = lnCross, normaliseSource = false) =>
    h.add(cross.forward(norm.forward(h), normaliseSource ? norm.forward(source) : source, { mask }));
  const mlpStep = (h: tf.Tensor) => h.add(block.mlp.forward(block.ln_2.forward(h)));
  const variants: Array<[() => tf.Tensor, string]> = [
    [
      () => mlpStep(selfStep(crossStep(x))),
      "The sub-layers are in the wrong order: causal self-attention first, then cross-attention, then the MLP.",
    ],
    [
      () => mlpStep(crossStep(selfStep(x), lnCross, true)),
      "Only the decoder's stream goes through ln_cross_attn; the encoder's output is passed to crossattention as it " +
        "is (the encoder already normalised it with its final LayerNorm).",
    ],
    [
      () => mlpStep(crossStep(selfStep(x), block.ln_1)),
      "Each sub-layer has its own LayerNorm: the cross-attention step uses ln_cross_attn, not ln_1.",
    ],
    [
      () => mlpStep(selfStep(x)),
      "The cross-attention step is missing: x = x + crossattention(ln_cross_attn(x), encoderOutput, { mask }).",
    ],
  ];
  for (const [variant, hint] of variants) if (allClose(result, variant())) return hint;
  return undefined;
}

export default defineExercise<Exports>({
  title: "Cross-attention",
  teaches:
    "queries from the decoder, keys and values from the encoder, a source padding mask, the decoder block's three sub-layers",
  checks: [
    {
      name: "sourcePaddingMask turns (B, S) of 1/0 into a float (B, 1, 1, S) mask",
      hint: "sourceMask.toFloat().reshape([B, 1, 1, S]): it broadcasts over the heads and the query positions of the scores (B, nh, T, S).",
      run({ sourcePaddingMask }, random) {
        const [B, S] = [randomInt(random, 1, 4), randomInt(random, 2, 7)];
        const { mask } = randomSourceMask(random, B, S);
        const result = expectTensor(sourcePaddingMask(mask), `sourcePaddingMask(mask [${mask.shape}])`);
        const hint =
          result.size === B * S && result.shape[result.rank - 1] !== S
            ? "The source positions are the keys, the *last* axis of the scores (B, nh, T, S): the mask must be (B, 1, 1, S)."
            : undefined;
        expectShape(result, [B, 1, 1, S], `sourcePaddingMask(mask [${mask.shape}])`, hint);
        if (result.dtype !== "float32") {
          fail(
            `sourcePaddingMask returned a ${result.dtype} tensor.`,
            "Convert it with .toFloat(): the mask is combined with float scores.",
          );
        }
        const expected = mask.toFloat().reshape([B, 1, 1, S]);
        const upsideDown = allClose(result, tf.sub(1, expected))
          ? "Keep the values as they are: 1 = a real token (may be attended to), 0 = padding."
          : undefined;
        expectClose(result, expected, "the mask's values", { atol: 0, rtol: 0, hint: upsideDown });
      },
    },
    {
      name: "crossAttention matches gpt-course's cross-attention (decoder and source of different lengths)",
      hint:
        "q = heads of linear(x, q_attn); k, v = tf.split(linear(encoderOutput, c_attn), 2, -1), then heads; " +
        "scaledDotProductAttention(q, k, v) (no causal mask); merge the heads; linear(..., c_proj).",
      run: (exports, random) => checkCrossAttention(exports, random, false),
    },
    {
      name: "crossAttention with a source padding mask matches gpt-course",
      hint: "scaledDotProductAttention(q, k, v, { mask: sourcePaddingMask(sourceMask) }): padded source positions get weight 0.",
      run: (exports, random) => checkCrossAttention(exports, random, true),
    },
    {
      name: "padded source positions never change crossAttention's output",
      hint:
        "Whatever the encoder wrote at a padded position must be invisible: mask the scores of those keys before the " +
        "softmax (sourcePaddingMask → scaledDotProductAttention's mask).",
      run({ crossAttention }, random) {
        const settings = randomSizes(random);
        const { B, T, S, embeddingDim: C, numHeads } = settings;
        const layer = referenceLayer(random, settings);
        try {
          const x = randomTensor(random, [B, T, C]);
          const source = randomTensor(random, [B, S, C]);
          const { mask } = randomSourceMask(random, B, S);
          const padding = tf.sub(1, mask).toFloat().expandDims(2); // (B, S, 1): 1 at padded positions
          const changed = source.add(randomTensor(random, [B, S, C], 5).mul(padding));
          const params = parametersOf(layer);
          const before = expectTensor(
            crossAttention(x, source, params, numHeads, mask),
            "crossAttention(x, encoderOutput, params, nh, mask)",
          );
          expectClose(
            crossAttention(x, changed, params, numHeads, mask),
            before,
            "the output after changing the encoder's output at padded positions only",
          );
        } finally {
          layer.dispose();
        }
      },
    },
    {
      name: "DecoderBlock registers ln_1, attn, ln_cross_attn, crossattention, ln_2, mlp with gpt-course's names",
      hint:
        'this.addModule("ln_cross_attn", new LayerNorm(C)) and this.addModule("crossattention", new MultiHeadAttention(' +
        'attentionConfig(settings, "cross"), random)), between attn and ln_2. Cross-attention has q_attn (C → C) and ' +
        "c_attn (C → 2C) instead of self-attention's c_attn (C → 3C).",
      run({ DecoderBlock }, random) {
        const settings = randomSizes(random);
        const reference = libBlock(settings, new Random(1));
        const mine = new DecoderBlock(settings, new Random(random.seed()));
        try {
          expectSameParameters(mine, reference, "your DecoderBlock", "gpt-course");
        } finally {
          mine.dispose();
          reference.dispose();
        }
      },
    },
    {
      name: "DecoderBlock.forward matches gpt-course's DecoderBlock with cross-attention and a padding mask",
      hint:
        "Three pre-LN residual steps: x + attn(ln_1(x)); x + crossattention(ln_cross_attn(x), { context: encoderOutput, " +
        "mask }); x + mlp(ln_2(x)). Each step reads the x the previous one produced.",
      run({ DecoderBlock }, random) {
        const settings = randomSizes(random);
        const { B, T, S, embeddingDim: C } = settings;
        const reference = libBlock(settings, new Random(random.seed()));
        const mine = new DecoderBlock(settings, new Random(random.seed()));
        try {
          randomise(reference, random);
          copyParameters(reference, mine, "gpt-course's DecoderBlock");
          const x = randomTensor(random, [B, T, C]);
          const source = randomTensor(random, [B, S, C]);
          const { mask } = randomSourceMask(random, B, S);
          const crossMask = mask.toFloat().reshape([B, 1, 1, S]);
          const what = `DecoderBlock.forward(x [${x.shape}], encoderOutput [${source.shape}], sourceMask)`;
          const result = expectTensor(mine.forward(x, source, mask), what);
          const expected = reference.forward(x, { encoderOutput: source, crossMask });
          const hint =
            result.shape.join() === expected.shape.join() && !allClose(result, expected)
              ? diagnoseBlock(result, reference, x, source, crossMask)
              : undefined;
          expectClose(result, expected, what, { hint });
        } finally {
          mine.dispose();
          reference.dispose();
        }
      },
    },
    {
      name: "a DecoderBlock is causal in the decoder's tokens but reads the whole source",
      hint:
        "Self-attention (attn) is causal: later decoder tokens never reach earlier outputs. Cross-attention is not: " +
        "every decoder position may read every (unpadded) source position, the last one included.",
      run({ DecoderBlock }, random) {
        const settings = randomSizes(random);
        const { B, T, S, embeddingDim: C } = settings;
        const block = new DecoderBlock(settings, new Random(random.seed()));
        try {
          randomise(block, random);
          const x = randomTensor(random, [B, T, C]);
          const source = randomTensor(random, [B, S, C]);
          const t = randomInt(random, 0, T - 2);
          const laterChanged = tf.concat(
            [x.slice([0, 0, 0], [B, t + 1, C]), randomTensor(random, [B, T - t - 1, C])],
            1,
          );
          const early = (y: unknown): tf.Tensor =>
            expectTensor(y, "DecoderBlock.forward(x, encoderOutput)").slice([0, 0, 0], [B, t + 1, C]);
          if (!allClose(early(block.forward(x, source)), early(block.forward(laterChanged, source)))) {
            fail(
              `changing the decoder's tokens at positions ${t + 1}..${T - 1} changed the outputs at positions 0..${t}.`,
            );
          }
          const lastChanged = tf.concat(
            [source.slice([0, 0, 0], [B, S - 1, C]), randomTensor(random, [B, 1, C], 3)],
            1,
          );
          const moved = tf.tidy(
            () =>
              block.forward(x, source).sub(block.forward(x, lastChanged)).abs().max(-1).min().dataSync()[0] as number,
          );
          if (!(moved > 1e-6))
            fail(
              "changing the last source position left some decoder position's output unchanged: does every position read the whole source?",
            );
        } finally {
          block.dispose();
        }
      },
    },
  ],
});
