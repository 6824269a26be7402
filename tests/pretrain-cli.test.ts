/**
 * `npm run pretrain` (scripts/pretrain.ts) with a config that asks for a BPE tokenizer: the tokenizer is
 * trained on the corpus and the extra files, saved in the checkpoint, and the model's vocabulary matches it.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { initBackend, loadCheckpoint } from "gpt-course";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(__dirname, "..");
const folder = mkdtempSync(join(tmpdir(), "pretrain-cli-"));
const corpus = join(folder, "corpus.txt");

beforeAll(async () => {
  await initBackend("cpu");
  writeFileSync(corpus, "The nation is in good hands, and the budget of 1861 is balanced. ".repeat(40)); // no words of the questions
});
afterAll(() => rmSync(folder, { recursive: true, force: true }));

function pretrain(config: object, out: string, extra: string[] = []) {
  const file = join(folder, `${out}.json`);
  writeFileSync(file, JSON.stringify(config));
  const args = [
    "--conditions=source",
    "scripts/pretrain.ts",
    "--config",
    file,
    "--corpus",
    corpus,
    "--out",
    join(folder, out),
    ...extra,
  ];
  return spawnSync(process.execPath, [resolve(repo, "node_modules/tsx/dist/cli.mjs"), ...args], {
    cwd: repo,
    env: { ...process.env, GPT_BACKEND: "cpu" },
    encoding: "utf8",
  });
}

const tiny = {
  model: { preset: "tiny", contextLength: 16 },
  trainer: { maxSteps: 2, warmupSteps: 1, evalInterval: 0 },
  data: { batchSize: 2 },
};

describe("npm run pretrain with a BPE tokenizer", () => {
  it("trains the tokenizer on the corpus and the extra files, digits split, and saves it with the model", async () => {
    const tokenizer = { kind: "bpe", vocabSize: 300, splitDigits: true, alsoTrainOn: ["data/instructions/test.jsonl"] };
    const run = pretrain({ ...tiny, tokenizer }, "bpe");
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toContain("trained a BPE tokenizer of 300 tokens");
    const checkpoint = await loadCheckpoint(join(folder, "bpe"));
    expect(checkpoint.tokenizer?.kind).toBe("bpe");
    expect(checkpoint.model.config.vocabSize).toBe(300);
    expect(checkpoint.tokenizer?.encode("1861")).toHaveLength(4);
    // The conversations were part of its training text: their words are merged into longer tokens.
    expect(checkpoint.tokenizer!.encode("What is the capital of").length).toBeLessThan(
      "What is the capital of".length / 2,
    );
    checkpoint.model.dispose();
  }, 60_000);

  it("refuses a vocabulary too small for the 256 byte tokens, and an unknown kind", () => {
    const small = pretrain({ ...tiny, tokenizer: { kind: "bpe", vocabSize: 200 } }, "small");
    expect(small.status).not.toBe(0);
    expect(small.stderr).toContain("vocabSize must be an integer above 256");
    const unknown = pretrain({ ...tiny, tokenizer: { kind: "words" } }, "unknown");
    expect(unknown.status).not.toBe(0);
    expect(unknown.stderr).toContain('tokenizer kind must be "char" or "bpe"');
  }, 60_000);

  it("--recipe chat-base trains notebook 07's tokenizer: 1,536 tokens, single digits, the chat data's words merged", async () => {
    const run = pretrain(tiny, "chat-base", ["--recipe", "chat-base"]); // the config file replaces model, trainer and data
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toContain("trained a BPE tokenizer of 1536 tokens");
    const checkpoint = await loadCheckpoint(join(folder, "chat-base"));
    expect(checkpoint.tokenizer?.vocabSize).toBe(1536);
    expect(checkpoint.tokenizer?.encode("1861")).toHaveLength(4);
    expect(checkpoint.tokenizer?.encode(" capital")).toHaveLength(1);
    expect(checkpoint.trainerOptions?.maxSteps).toBe(2);
    checkpoint.model.dispose();
    const unknown = pretrain(tiny, "unknown-recipe", ["--recipe", "chat"]);
    expect(unknown.status).not.toBe(0);
    expect(unknown.stderr).toContain('--recipe must be "course" or "chat-base", got "chat"');
  }, 120_000);
});
