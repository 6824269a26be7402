import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CharTokenizer,
  checkpointFromBytes,
  GPT,
  initBackend,
  loadCheckpoint,
  resumeTrainer,
  saveCheckpoint,
  TokenDataset,
  tf,
  Trainer,
} from "gpt-course";

const folder = fs.mkdtempSync(path.join(os.tmpdir(), "checkpoint-test-"));
const text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
const tokenizer = CharTokenizer.fromText(text);
// Dropout on, so the resumed run must also replay the dropout masks.
const modelConfig = { preset: "tiny" as const, vocabSize: tokenizer.vocabSize, dropout: 0.1, seed: 7 };
const trainerOptions = { maxSteps: 8, warmupSteps: 2, evalInterval: 4, evalBatches: 1, learningRate: 3e-3 };

function freshRun() {
  const model = new GPT(modelConfig);
  const data = new TokenDataset(tokenizer.encode(text), { contextLength: 16, batchSize: 4, seed: 3 });
  return { model, trainer: new Trainer(model, data, trainerOptions) };
}

beforeAll(async () => {
  await initBackend();
});
afterAll(() => fs.rmSync(folder, { recursive: true, force: true }));

describe("checkpoints", () => {
  it("resume is exact: N steps + save + load + N steps equals 2N steps in one run", async () => {
    const straight = freshRun();
    await straight.trainer.train({ progress: false });
    const straightLosses = straight.trainer.history.steps.map((s) => s.loss);

    const first = freshRun();
    await first.trainer.train({ steps: 4, progress: false });
    const directory = path.join(folder, "resume");
    await saveCheckpoint(directory, { model: first.model, tokenizer, trainer: first.trainer });
    first.trainer.dispose();
    first.model.dispose();

    const checkpoint = await loadCheckpoint(directory);
    expect(checkpoint.tokenizer?.encode("fox")).toEqual(tokenizer.encode("fox"));
    const data = new TokenDataset(checkpoint.tokenizer!.encode(text), { contextLength: 16, batchSize: 4, seed: 3 });
    const resumed = new Trainer(checkpoint.model, data, checkpoint.trainerOptions!);
    resumeTrainer(resumed, checkpoint);
    expect(resumed.step).toBe(4);
    await resumed.train({ progress: false });
    const resumedLosses = resumed.history.steps.map((s) => s.loss);

    expect(resumedLosses).toHaveLength(8);
    resumedLosses.forEach((loss, i) => expect(loss).toBeCloseTo(straightLosses[i], 5));
    expect(resumed.history.evals.map((e) => e.validation)).toEqual(
      straight.trainer.history.evals.map((e) => e.validation),
    );
    const a = straight.model.h[1].mlp.c_proj.weight.dataSync();
    const b = checkpoint.model.h[1].mlp.c_proj.weight.dataSync();
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 6);
    for (const t of [straight.trainer, resumed]) t.dispose();
    for (const m of [straight.model, checkpoint.model]) m.dispose();
  });

  it("a save that fails half-way leaves the previous checkpoint intact", async () => {
    const { model, trainer } = freshRun();
    const directory = path.join(folder, "atomic");
    await saveCheckpoint(directory, { model, tokenizer, trainer });
    const before = fs.readFileSync(path.join(directory, "model.safetensors"));
    await trainer.train({ steps: 2, progress: false });
    // The disk "fills up" after model.safetensors is written, while the optimizer state is being saved.
    const failing = Object.create(trainer) as Trainer;
    failing.getState = () => {
      throw new Error("ENOSPC: no space left on device");
    };
    await expect(saveCheckpoint(directory, { model, tokenizer, trainer: failing })).rejects.toThrow(
      /ENOSPC.*previous checkpoint there is unchanged/,
    );
    expect(fs.readFileSync(path.join(directory, "model.safetensors")).equals(before)).toBe(true);
    expect(fs.existsSync(`${directory}.incoming`)).toBe(false);
    const reloaded = await loadCheckpoint(directory);
    expect(reloaded.trainerState?.step).toBe(0);
    reloaded.disposeTrainerState();
    reloaded.model.dispose();
    trainer.dispose();
    model.dispose();
  });

  it("recovers the previous checkpoint when a crash hit between the two renames of a save", async () => {
    const { model, trainer } = freshRun();
    const directory = path.join(folder, "crash");
    await saveCheckpoint(directory, { model, tokenizer, trainer });
    fs.renameSync(directory, `${directory}.previous`); // the state right after the first rename
    const recovered = await loadCheckpoint(directory);
    expect(recovered.model.config).toEqual(model.config);
    const original = new Map(model.namedParameters());
    for (const [name, variable] of recovered.model.namedParameters()) {
      expect(Array.from(variable.dataSync()), name).toEqual(Array.from(original.get(name)!.dataSync()));
    }
    const state = trainer.getState();
    expect(recovered.trainerState?.step).toBe(state.step);
    expect(recovered.trainerState?.data).toEqual(state.data);
    for (const [name, moment] of Object.entries(state.optimizer.secondMoments)) {
      expect(Array.from(recovered.trainerState!.optimizer.secondMoments[name].dataSync()), name).toEqual(
        Array.from(moment.dataSync()),
      );
    }
    tf.dispose([...Object.values(state.optimizer.firstMoments), ...Object.values(state.optimizer.secondMoments)]);
    recovered.disposeTrainerState();
    recovered.model.dispose();
    trainer.dispose();
    model.dispose();
  });

  it("with both a checkpoint and a .previous one, loads the checkpoint; a leftover .incoming is cleared by the next save", async () => {
    const first = freshRun();
    const directory = path.join(folder, "leftovers");
    await saveCheckpoint(directory, { model: first.model, tokenizer, trainer: first.trainer }); // step 0
    fs.cpSync(directory, `${directory}.previous`, { recursive: true });
    await first.trainer.train({ steps: 2, progress: false });
    fs.mkdirSync(`${directory}.incoming`); // as a crash in the middle of a save leaves it
    fs.writeFileSync(path.join(`${directory}.incoming`, "model.safetensors"), "half a file");
    await saveCheckpoint(directory, { model: first.model, tokenizer, trainer: first.trainer }); // step 2
    expect(fs.existsSync(`${directory}.incoming`)).toBe(false);
    fs.cpSync(directory, `${directory}.previous`, { recursive: true, force: true });
    fs.writeFileSync(path.join(`${directory}.previous`, "trainer.json"), "{}"); // a stale .previous must not be read
    const loaded = await loadCheckpoint(directory);
    expect(loaded.trainerState?.step).toBe(2);
    loaded.disposeTrainerState();
    loaded.model.dispose();
    first.trainer.dispose();
    first.model.dispose();
  });

  it("saves the weights under GPT-2's names and loads them bit for bit", async () => {
    const model = new GPT(modelConfig);
    const directory = path.join(folder, "weights");
    await saveCheckpoint(directory, { model });
    const { model: loaded, trainerState } = await loadCheckpoint(directory);
    expect(trainerState).toBeUndefined();
    const original = new Map(model.namedParameters());
    for (const [name, variable] of loaded.namedParameters()) {
      expect(Array.from(variable.dataSync())).toEqual(Array.from(original.get(name)!.dataSync()));
    }
    model.dispose();
    loaded.dispose();
  });

  describe("bad checkpoints give clear errors", () => {
    const make = async (name: string): Promise<string> => {
      const model = new GPT(modelConfig);
      const directory = path.join(folder, name);
      await saveCheckpoint(directory, { model, tokenizer });
      model.dispose();
      return directory;
    };

    it("missing directory", async () => {
      await expect(loadCheckpoint(path.join(folder, "nowhere"))).rejects.toThrow(/no checkpoint at .*nowhere/);
    });
    it("missing config.json", async () => {
      const directory = await make("no-config");
      fs.rmSync(path.join(directory, "config.json"));
      await expect(loadCheckpoint(directory)).rejects.toThrow(/config\.json is missing/);
    });
    it("config.json that is not JSON", async () => {
      const directory = await make("bad-json");
      fs.writeFileSync(path.join(directory, "config.json"), "{ not json");
      await expect(loadCheckpoint(directory)).rejects.toThrow(/not valid JSON/);
    });
    it("an invalid model config", async () => {
      const directory = await make("bad-config");
      const file = path.join(directory, "config.json");
      const config = JSON.parse(fs.readFileSync(file, "utf8"));
      config.model.numHeads = 3;
      fs.writeFileSync(file, JSON.stringify(config));
      await expect(loadCheckpoint(directory)).rejects.toThrow(/invalid model config.*divisible by numHeads/);
    });
    it("weights that do not match the config", async () => {
      const directory = await make("mismatch");
      const file = path.join(directory, "config.json");
      const config = JSON.parse(fs.readFileSync(file, "utf8"));
      config.model.embeddingDim = 32;
      fs.writeFileSync(file, JSON.stringify(config));
      await expect(loadCheckpoint(directory)).rejects.toThrow(/has shape \[.*\] but the model expects/);
    });
    /** As a checkpoint saved before config.json held checksums: the file checks below then meet the damage. */
    const withoutChecksums = (directory: string) => {
      const file = path.join(directory, "config.json");
      const config = JSON.parse(fs.readFileSync(file, "utf8"));
      delete config.checksums;
      fs.writeFileSync(file, JSON.stringify(config));
    };
    const makeWithTrainer = async (name: string): Promise<string> => {
      const { model, trainer } = freshRun();
      const directory = path.join(folder, name);
      await saveCheckpoint(directory, { model, tokenizer, trainer });
      trainer.dispose();
      model.dispose();
      return directory;
    };

    it("config.json that holds no object", async () => {
      const directory = await make("null-config");
      fs.writeFileSync(path.join(directory, "config.json"), "null");
      await expect(loadCheckpoint(directory)).rejects.toThrow(/config\.json must hold a JSON object, got null/);
    });
    it("a weights file changed on disk: the checksum names it", async () => {
      const directory = await make("corrupt");
      const file = path.join(directory, "model.safetensors");
      const bytes = fs.readFileSync(file);
      bytes[bytes.length - 3] ^= 0x40; // one bit of one weight
      fs.writeFileSync(file, bytes);
      const before = tf.memory().numTensors;
      await expect(loadCheckpoint(directory)).rejects.toThrow(
        /model\.safetensors is corrupt \(its SHA-256 checksum differs/,
      );
      expect(tf.memory().numTensors).toBe(before);
    });
    it("a weight that is not a number", async () => {
      const directory = await make("nan");
      withoutChecksums(directory);
      const file = path.join(directory, "model.safetensors");
      const bytes = fs.readFileSync(file);
      bytes.writeFloatLE(Number.NaN, bytes.length - 4);
      fs.writeFileSync(file, bytes);
      const before = tf.memory().numTensors;
      await expect(loadCheckpoint(directory)).rejects.toThrow(/holds NaN at index \d+: the weights are corrupt/);
      expect(tf.memory().numTensors).toBe(before);
    });
    it("missing optimizer.safetensors", async () => {
      const directory = await makeWithTrainer("no-optimizer");
      withoutChecksums(directory);
      fs.rmSync(path.join(directory, "optimizer.safetensors"));
      await expect(loadCheckpoint(directory)).rejects.toThrow(
        /optimizer\.safetensors is missing, but trainer\.json is there/,
      );
    });
    it("an optimizer file that lacks a tensor: the moments read so far are freed", async () => {
      const directory = await makeWithTrainer("short-optimizer");
      withoutChecksums(directory);
      const { openSafetensors, writeSafetensors } = await import("gpt-course");
      const file = path.join(directory, "optimizer.safetensors");
      const reader = await openSafetensors(file);
      const kept: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
      for (const name of reader.names().filter((name) => name !== "v.ln_f.bias")) {
        const { shape, data } = await reader.readTensor(name);
        kept[name] = { dtype: "F32", shape: [...shape], data: data as Float32Array };
      }
      await reader.close();
      await writeSafetensors(file, kept);
      const before = tf.memory().numTensors;
      await expect(loadCheckpoint(directory)).rejects.toThrow(/v\.ln_f\.bias/);
      expect(tf.memory().numTensors).toBe(before);
    });
    it("saving under a path whose parent is a file", async () => {
      const blocker = path.join(folder, "a-file");
      fs.writeFileSync(blocker, "not a folder");
      const model = new GPT(modelConfig);
      await expect(saveCheckpoint(path.join(blocker, "run"), { model })).rejects.toThrow(
        /cannot create a folder at ".*a-file\/run\.incoming" \(ENOTDIR\)/,
      );
      model.dispose();
    });
    it("truncated weights", async () => {
      const directory = await make("truncated");
      withoutChecksums(directory);
      const file = path.join(directory, "model.safetensors");
      const bytes = fs.readFileSync(file);
      fs.writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
      await expect(loadCheckpoint(directory)).rejects.toThrow(/truncat|too short|out of bounds|beyond/i);
    });
    it("no tensors are leaked by a failed load", async () => {
      const directory = await make("leak");
      fs.rmSync(path.join(directory, "model.safetensors"));
      const before = tf.memory().numTensors;
      await expect(loadCheckpoint(directory)).rejects.toThrow();
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});

describe("checkpointFromBytes: the same checkpoint from its files' bytes (a web page has no file system)", () => {
  let directory: string;
  let configJson: string;
  let weights: Uint8Array;
  beforeAll(async () => {
    const model = new GPT(modelConfig);
    directory = path.join(folder, "bytes");
    await saveCheckpoint(directory, { model, tokenizer });
    model.dispose();
    configJson = fs.readFileSync(path.join(directory, "config.json"), "utf8");
    weights = new Uint8Array(fs.readFileSync(path.join(directory, "model.safetensors")));
  });
  /** config.json with `change` applied to its parsed form. */
  // biome-ignore lint/suspicious/noExplicitAny: a test edits arbitrary fields of the parsed JSON
  const changedConfig = (change: (config: any) => void): string => {
    const config = JSON.parse(configJson);
    change(config);
    return JSON.stringify(config);
  };

  it("gives the model and tokenizer loadCheckpoint gives, bit for bit", async () => {
    const fromDisk = await loadCheckpoint(directory);
    const fromBytes = await checkpointFromBytes(configJson, weights, { source: "bytes" });
    expect(fromBytes.model.config).toEqual(fromDisk.model.config);
    expect(fromBytes.tokenizer?.encode("fox")).toEqual(tokenizer.encode("fox"));
    const expected = new Map(fromDisk.model.namedParameters());
    for (const [name, variable] of fromBytes.model.namedParameters()) {
      expect(Array.from(variable.dataSync())).toEqual(Array.from(expected.get(name)!.dataSync()));
    }
    fromDisk.model.dispose();
    fromBytes.model.dispose();
  });

  it("refuses bad files with the message loadCheckpoint gives, and leaks no tensors", async () => {
    const flipped = weights.slice();
    flipped[flipped.length - 3] ^= 0x40;
    const withoutChecksums = changedConfig((config) => delete config.checksums);
    const nan = weights.slice();
    new DataView(nan.buffer).setFloat32(nan.length - 4, Number.NaN, true);
    const cases: Array<[string, string, Uint8Array, RegExp]> = [
      ["not JSON", "{ not json", weights, /checkpointFromBytes: bytes\/config\.json is not valid JSON/],
      ["not a checkpoint config", '{"hello": 1}', weights, /bytes\/config\.json is not a gpt-course-checkpoint config/],
      [
        "an invalid model config",
        changedConfig((config) => (config.model.numHeads = 3)),
        weights,
        /invalid model config.*divisible by numHeads/,
      ],
      [
        "a tensor missing",
        changedConfig((config) => (config.model.numLayers = 3)),
        weights,
        /bytes\/model\.safetensors: no tensor named "h\.2\./,
      ],
      [
        "a wrong shape",
        changedConfig((config) => (config.model.embeddingDim = 32)),
        weights,
        /has shape \[.*\] but the model expects/,
      ],
      ["a changed byte", configJson, flipped, /bytes\/model\.safetensors is corrupt \(its SHA-256 checksum differs/],
      ["a weight that is not a number", withoutChecksums, nan, /holds NaN at index \d+: the weights are corrupt/],
      ["truncated weights", withoutChecksums, weights.subarray(0, -1000), /truncated/],
      ["no weights at all", withoutChecksums, new Uint8Array(0), /too short \(0 bytes\) to be a safetensors file/],
    ];
    for (const [what, config, bytes, message] of cases) {
      const before = tf.memory().numTensors;
      await expect(checkpointFromBytes(config, bytes, { source: "bytes" }), what).rejects.toThrow(message);
      expect(tf.memory().numTensors, what).toBe(before);
    }
  });
});
