import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  configFromHF,
  generate,
  GPT,
  GPT2Tokenizer,
  initBackend,
  loadGPT2,
  openSafetensors,
  saveGPT2,
  tf,
} from "gpt-course";

/**
 * Parity with GPT-2 as Hugging Face computes it. The fixture (tests/fixtures/gpt2-tiny) is a GPT-2-shaped
 * model with random weights in the published file layout, and logits computed by an independent PyTorch
 * implementation (tests/fixtures/make_gpt2_fixture.py, itself checked against a float64 loop version).
 */
const fixture = path.join(__dirname, "fixtures", "gpt2-tiny");
interface Case {
  prompt: string;
  input_ids: number[];
  last_logits_first: number[];
  last_logits_strided: { start: number; stride: number; values: number[] };
  last_top20: Array<{ id: number; logit: number }>;
  all_positions_top20?: Array<Array<{ id: number; logit: number }>>;
  greedy_ids: number[];
}
const expected = JSON.parse(fs.readFileSync(path.join(fixture, "expected.json"), "utf8")) as { cases: Case[] };
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "gpt2-test-"));
let model: GPT;

/** Largest |ours − reference| relative to the largest reference magnitude. */
function relativeError(ours: ArrayLike<number>, reference: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < reference.length; i++) {
    worst = Math.max(worst, Math.abs(ours[i] - reference[i]));
    scale = Math.max(scale, Math.abs(reference[i]));
  }
  return worst / scale;
}

function logitsFor(gpt: GPT, ids: number[]): number[][] {
  return tf.tidy(
    () =>
      gpt
        .forward(tf.tensor2d([ids], [1, ids.length], "int32"))
        .squeeze([0])
        .arraySync() as number[][],
  );
}

beforeAll(async () => {
  await initBackend();
  model = await loadGPT2(fixture);
});
afterAll(() => {
  model.dispose();
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe("loadGPT2", () => {
  it("reads the config as GPT-2's architecture", () => {
    expect(model.config).toMatchObject({
      vocabSize: 50257,
      contextLength: 64,
      numLayers: 2,
      numHeads: 2,
      embeddingDim: 16,
      activation: "gelu_tanh",
      tieWeights: true,
    });
  });

  it.each(expected.cases.map((c) => [c.prompt, c] as const))("matches the reference logits for %j", (_, testCase) => {
    expect(new GPT2Tokenizer().encode(testCase.prompt)).toEqual(testCase.input_ids);
    const logits = logitsFor(model, testCase.input_ids);
    const last = logits[logits.length - 1];
    expect(relativeError(last.slice(0, testCase.last_logits_first.length), testCase.last_logits_first)).toBeLessThan(
      1e-4,
    );
    const { start, stride, values } = testCase.last_logits_strided;
    expect(
      relativeError(
        values.map((_, i) => last[start + i * stride]),
        values,
      ),
    ).toBeLessThan(1e-4);
    expect(
      relativeError(
        testCase.last_top20.map(({ id }) => last[id]),
        testCase.last_top20.map(({ logit }) => logit),
      ),
    ).toBeLessThan(1e-4);
    testCase.all_positions_top20?.forEach((top, position) => {
      expect(
        relativeError(
          top.map(({ id }) => logits[position][id]),
          top.map(({ logit }) => logit),
        ),
      ).toBeLessThan(1e-4);
    });
  });

  it.each(expected.cases.map((c) => [c.prompt, c] as const))(
    "greedy generation gives the reference tokens for %j",
    async (_, testCase) => {
      for (const useCache of [true, false]) {
        const { tokens } = await generate(model, testCase.input_ids, {
          maxNewTokens: testCase.greedy_ids.length,
          temperature: 0,
          useCache,
        });
        expect(tokens[0]).toEqual(testCase.greedy_ids);
      }
    },
  );

  it("gives clear errors for a missing directory and unsupported configs", async () => {
    await expect(loadGPT2(path.join(scratch, "missing"))).rejects.toThrow(/config\.json is missing.*download:gpt2/);
    const base = { vocab_size: 10, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 };
    expect(() => configFromHF({ ...base, activation_function: "relu" })).toThrow(
      /activation_function "relu" is not supported/,
    );
    expect(() => configFromHF({ ...base, n_inner: 10 })).toThrow(/n_inner 10 is not supported/);
    expect(() => configFromHF({ ...base, scale_attn_by_inverse_layer_idx: true })).toThrow(
      /scale_attn_by_inverse_layer_idx/,
    );
  });
});

describe("loadGPT2 refuses wrong files, leaking nothing", () => {
  /** A copy of the fixture with config.json and model.safetensors changed by `edit`. */
  async function brokenCopy(
    name: string,
    edit: { config?: unknown; weights?: (bytes: Buffer) => Buffer },
  ): Promise<string> {
    const directory = path.join(scratch, name);
    fs.mkdirSync(directory, { recursive: true });
    const config = JSON.parse(fs.readFileSync(path.join(fixture, "config.json"), "utf8"));
    fs.writeFileSync(path.join(directory, "config.json"), JSON.stringify("config" in edit ? edit.config : config));
    const weights = fs.readFileSync(path.join(fixture, "model.safetensors"));
    fs.writeFileSync(path.join(directory, "model.safetensors"), edit.weights ? edit.weights(weights) : weights);
    return directory;
  }
  const fixtureConfig = () => JSON.parse(fs.readFileSync(path.join(fixture, "config.json"), "utf8"));

  it.each([
    ["config.json holding null", { config: null }, /must hold a JSON object.*got null/],
    ["config.json holding a list", { config: [] }, /must hold a JSON object.*got \[\]/],
    [
      "a size missing from config.json",
      { config: { ...fixtureConfig(), n_layer: undefined } },
      /"n_layer" must be a positive integer, got undefined/,
    ],
    [
      "fewer layers in config.json than in the file",
      { config: { ...fixtureConfig(), n_layer: fixtureConfig().n_layer - 1 } },
      /tensor\(s\) this config has no place for \("(transformer\.)?h\.\d+\..*check n_layer/,
    ],
    [
      "a truncated safetensors file",
      { weights: (bytes: Buffer) => bytes.subarray(0, bytes.length - 100) },
      /model\.safetensors/,
    ],
    [
      "a weight that is not a number",
      { weights: (bytes: Buffer) => withNaN(bytes) },
      /"(transformer\.)?wte\.weight" in .* holds NaN at index 0: the file is corrupt/,
    ],
  ])("%s", async (name, edit, message) => {
    const directory = await brokenCopy(name.replace(/\W+/g, "-"), edit);
    const before = tf.memory().numTensors;
    await expect(loadGPT2(directory)).rejects.toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  });
});

/** The safetensors bytes with the first float of the token embedding (wte) replaced by NaN. */
function withNaN(bytes: Buffer): Buffer {
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const wte = header["wte.weight"] ?? header["transformer.wte.weight"];
  expect(wte.dtype).toBe("F32");
  const copy = Buffer.from(bytes);
  copy.writeFloatLE(Number.NaN, 8 + headerLength + wte.data_offsets[0]);
  return copy;
}

describe("saveGPT2", () => {
  it("round trip: save, load, same logits, and the published tensor names", async () => {
    const directory = path.join(scratch, "roundtrip");
    await saveGPT2(model, directory);
    const reloaded = await loadGPT2(directory);
    const ids = expected.cases[0].input_ids;
    expect(relativeError(logitsFor(reloaded, ids).flat(), logitsFor(model, ids).flat())).toBe(0);
    const names = async (file: string) => {
      const weights = await openSafetensors(file);
      const all = weights
        .names()
        .filter((name) => !name.endsWith(".attn.bias"))
        .sort();
      await weights.close();
      return all;
    };
    expect(await names(path.join(directory, "model.safetensors"))).toEqual(
      await names(path.join(fixture, "model.safetensors")),
    );
    const hf = JSON.parse(fs.readFileSync(path.join(directory, "config.json"), "utf8"));
    expect(hf).toMatchObject({
      model_type: "gpt2",
      n_embd: 16,
      n_layer: 2,
      n_head: 2,
      activation_function: "gelu_new",
    });
    reloaded.dispose();
  });

  it("an untied output layer is saved as torch's (V, C) Linear and loads back", async () => {
    const untied = new GPT({
      vocabSize: 50,
      contextLength: 8,
      numLayers: 1,
      numHeads: 2,
      embeddingDim: 8,
      tieWeights: false,
    });
    const directory = path.join(scratch, "untied");
    await saveGPT2(untied, directory);
    const weights = await openSafetensors(path.join(directory, "model.safetensors"));
    expect(weights.info("lm_head.weight").shape).toEqual([50, 8]);
    await weights.close();
    const reloaded = await loadGPT2(directory);
    expect(relativeError(logitsFor(reloaded, [1, 2, 3]).flat(), logitsFor(untied, [1, 2, 3]).flat())).toBe(0);
    untied.dispose();
    reloaded.dispose();
  });

  it("refuses a model that is not GPT-2's architecture", async () => {
    const noBias = new GPT({ preset: "tiny", bias: false });
    await expect(saveGPT2(noBias, path.join(scratch, "nobias"))).rejects.toThrow(/biases and pre-LayerNorm/);
    noBias.dispose();
  });
});
