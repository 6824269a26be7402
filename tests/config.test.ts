/**
 * GPT configuration: defaults, presets, parameter counts (from the config alone vs a built model vs
 * published GPT-2 sizes) and validation errors that name the offending field.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { countParameters, GPT, type GPTConfig, gptConfig, initBackend, presets, validateConfig } from "gpt-course";

beforeAll(async () => {
  await initBackend();
});

describe("defaults and presets", () => {
  it("defaults are GPT-2 small's", () => {
    expect(gptConfig()).toEqual({
      vocabSize: 50257,
      contextLength: 1024,
      numLayers: 12,
      numHeads: 12,
      embeddingDim: 768,
      dropout: 0,
      bias: true,
      tieWeights: true,
      layerNormEpsilon: 1e-5,
      activation: "gelu_tanh",
      preNorm: true,
      initStd: 0.02,
      seed: 1337,
    });
  });

  it("presets set the shape fields; the rest stay at the defaults", () => {
    expect(Object.keys(presets).sort()).toEqual(["course", "gpt2", "gpt2-large", "gpt2-medium", "gpt2-xl", "tiny"]);
    const tiny = gptConfig({ preset: "tiny" });
    expect(tiny).toMatchObject({ vocabSize: 65, contextLength: 16, numLayers: 2, numHeads: 2, embeddingDim: 16 });
    expect(tiny).toMatchObject({
      dropout: 0,
      bias: true,
      tieWeights: true,
      activation: "gelu_tanh",
      preNorm: true,
      seed: 1337,
    });
    expect(gptConfig({ preset: "course" })).toMatchObject({
      vocabSize: 65,
      contextLength: 128,
      numLayers: 4,
      numHeads: 4,
      embeddingDim: 128,
    });
    expect(gptConfig({ preset: "gpt2-medium" })).toMatchObject({ numLayers: 24, numHeads: 16, embeddingDim: 1024 });
    expect(gptConfig({ preset: "gpt2-large" })).toMatchObject({ numLayers: 36, numHeads: 20, embeddingDim: 1280 });
    expect(gptConfig({ preset: "gpt2-xl" })).toMatchObject({ numLayers: 48, numHeads: 25, embeddingDim: 1600 });
    for (const name of Object.keys(presets) as Array<keyof typeof presets>) {
      expect(() => gptConfig({ preset: name }), name).not.toThrow();
      expect(gptConfig({ preset: name })).not.toHaveProperty("preset");
    }
  });

  it("overrides beat the preset; undefined overrides are ignored", () => {
    const config = gptConfig({ preset: "tiny", numLayers: 3, dropout: 0.1, seed: 7 });
    expect(config).toMatchObject({ vocabSize: 65, numLayers: 3, dropout: 0.1, seed: 7 });
    expect(gptConfig({ preset: "tiny", numLayers: undefined }).numLayers).toBe(2);
  });

  it("a model keeps its complete config", () => {
    const model = new GPT({ vocabSize: 11, contextLength: 6, numLayers: 1, numHeads: 2, embeddingDim: 8 });
    expect(model.config).toEqual(
      gptConfig({ vocabSize: 11, contextLength: 6, numLayers: 1, numHeads: 2, embeddingDim: 8 }),
    );
    expect(model.h).toHaveLength(1);
    model.dispose();
  });
});

describe("countParameters", () => {
  const base = { vocabSize: 23, contextLength: 9, numLayers: 2, numHeads: 2, embeddingDim: 12 };
  const variants: Array<[string, Partial<GPTConfig>]> = [
    ["tied, with biases", {}],
    ["untied", { tieWeights: false }],
    ["no biases", { bias: false }],
    ["untied, no biases, 3 layers", { tieWeights: false, bias: false, numLayers: 3 }],
    ["post-LN, exact gelu", { preNorm: false, activation: "gelu" }],
  ];

  it.each(variants)("equals model.numParameters(): %s", (_name, overrides) => {
    const config = gptConfig({ ...base, ...overrides });
    const model = new GPT(config);
    expect(countParameters(config)).toBe(model.numParameters());
    // And by hand: per block 12C² + (bias ? 9C : 0) + 4C (two LayerNorms); embeddings; ln_f; head.
    const { vocabSize: V, contextLength: T, numLayers: L, embeddingDim: C } = config;
    const manual =
      V * C + T * C + L * (12 * C * C + (config.bias ? 9 * C : 0) + 4 * C) + 2 * C + (config.tieWeights ? 0 : V * C);
    expect(model.numParameters()).toBe(manual);
    model.dispose();
  });

  it("tiny and course presets match their built models", () => {
    for (const preset of ["tiny", "course"] as const) {
      const config = gptConfig({ preset });
      const model = new GPT(config);
      expect(countParameters(config), preset).toBe(model.numParameters());
      model.dispose();
    }
    expect(countParameters(gptConfig({ preset: "course" }))).toBe(818_048); // "~0.8M"
  });

  it("GPT-2 family matches the published sizes (config only)", () => {
    expect(countParameters(gptConfig({ preset: "gpt2" }))).toBe(124_439_808);
    expect(countParameters(gptConfig({ preset: "gpt2-medium" }))).toBe(354_823_168);
    expect(countParameters(gptConfig({ preset: "gpt2-large" }))).toBe(774_030_080);
    expect(countParameters(gptConfig({ preset: "gpt2-xl" }))).toBe(1_557_611_200);
    expect(countParameters(gptConfig({ preset: "gpt2", tieWeights: false }))).toBe(124_439_808 + 50257 * 768);
  });
});

describe("validation: every error names the field", () => {
  const invalid: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      "embeddingDim not divisible by numHeads",
      { embeddingDim: 10, numHeads: 3 },
      /embeddingDim \(10\) must be divisible by numHeads \(3\)/,
    ],
    ["non-integer vocabSize", { vocabSize: 10.5 }, /vocabSize must be a positive integer, got 10.5/],
    ["zero contextLength", { contextLength: 0 }, /contextLength must be a positive integer, got 0/],
    ["negative numLayers", { numLayers: -1 }, /numLayers must be a positive integer, got -1/],
    ["zero numHeads", { numHeads: 0 }, /numHeads must be a positive integer, got 0/],
    ["zero embeddingDim", { embeddingDim: 0 }, /embeddingDim must be a positive integer, got 0/],
    ["NaN embeddingDim", { embeddingDim: NaN }, /embeddingDim must be a positive integer/],
    ["infinite contextLength", { contextLength: Infinity }, /contextLength must be a positive integer/],
    ["string numLayers", { numLayers: "2" }, /numLayers must be a positive integer, got "2"/],
    ["infinite contextLength", { contextLength: Infinity }, /contextLength must be a positive integer, got Infinity/],
    ["dropout 1", { dropout: 1 }, /dropout must be in \[0, 1\), got 1/],
    ["negative dropout", { dropout: -0.1 }, /dropout must be in \[0, 1\), got -0.1/],
    ["NaN dropout", { dropout: NaN }, /dropout must be in \[0, 1\)/],
    ["zero layerNormEpsilon", { layerNormEpsilon: 0 }, /layerNormEpsilon must be > 0/],
    ["negative initStd", { initStd: -0.02 }, /initStd must be > 0/],
    ["wrong activation", { activation: "relu" }, /activation must be "gelu" or "gelu_tanh", got "relu"/],
    ["non-boolean bias", { bias: 1 }, /bias must be true or false, got 1/],
    ["non-boolean tieWeights", { tieWeights: "yes" }, /tieWeights must be true or false, got "yes"/],
    ["non-boolean preNorm", { preNorm: null }, /preNorm must be true or false, got null/],
    ["non-integer seed", { seed: 1.5 }, /seed must be an integer, got 1.5/],
    ["unknown field", { numLayer: 2 }, /unknown field "numLayer"\. Known fields: vocabSize, contextLength, numLayers/],
  ];

  it.each(invalid)("%s", (_name, overrides, message) => {
    expect(() => gptConfig(overrides as Partial<GPTConfig>)).toThrow(message);
    expect(() => new GPT(overrides as Partial<GPTConfig>)).toThrow(message);
    expect(() => validateConfig({ ...gptConfig(), ...overrides } as GPTConfig)).toThrow(message);
  });

  it("unknown preset lists the presets", () => {
    expect(() => gptConfig({ preset: "gpt3" as never })).toThrow(
      /Unknown GPT preset "gpt3"\. Available presets: tiny, course, gpt2, gpt2-medium, gpt2-large, gpt2-xl/,
    );
  });

  it("valid edge values are accepted", () => {
    expect(() => gptConfig({ dropout: 0 })).not.toThrow();
    expect(() => gptConfig({ dropout: 0.999 })).not.toThrow();
    expect(() => gptConfig({ seed: 0 })).not.toThrow();
    expect(() => gptConfig({ seed: -5 })).not.toThrow();
    expect(() =>
      gptConfig({ numHeads: 1, embeddingDim: 1, numLayers: 1, vocabSize: 1, contextLength: 1 }),
    ).not.toThrow();
  });

  // Configs come from JSON files (checkpoints, notebooks); a number written as a string must not slip through.
  it.each([
    ["dropout", "0.1"],
    ["layerNormEpsilon", "1e-5"],
    ["initStd", "0.02"],
  ])("a numeric field given as a string is rejected: %s = %j", (field, value) => {
    expect(() => gptConfig({ [field]: value } as Partial<GPTConfig>)).toThrow(new RegExp(field));
  });
});
