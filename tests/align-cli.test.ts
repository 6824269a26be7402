/**
 * `npm run align` (scripts/align.ts) end to end on a tiny chat checkpoint: RL (with replayed fine-tuning rows) and
 * DPO each train, save a checkpoint that loads, and report; bad flags and a checkpoint without a tokenizer get a
 * clear message and a non-zero exit, never a stack trace.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { addChatTokens, BPETokenizer, GPT, initBackend, loadCheckpoint, saveCheckpoint } from "gpt-course";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(__dirname, "..");
const folder = mkdtempSync(join(tmpdir(), "align-cli-"));
const chatModel = join(folder, "chat");
const TASKS = "capital,addition"; // short conversations: they fit the tiny model's context in bytes

beforeAll(async () => {
  await initBackend("cpu");
  const tokenizer = BPETokenizer.train("bytes only", 256); // no merges: one token per byte encodes any text
  addChatTokens(tokenizer);
  const model = new GPT({ preset: "tiny", vocabSize: tokenizer.vocabSize, contextLength: 128, seed: 1 });
  await saveCheckpoint(chatModel, { model, tokenizer });
  await saveCheckpoint(join(folder, "no-tokenizer"), { model });
  model.dispose();
});
afterAll(() => rmSync(folder, { recursive: true, force: true }));

function align(args: string[]) {
  return spawnSync(
    process.execPath,
    [resolve(repo, "node_modules/tsx/dist/cli.mjs"), "--conditions=source", "scripts/align.ts", ...args],
    { cwd: repo, env: { ...process.env, GPT_BACKEND: "wasm" }, encoding: "utf8" },
  );
}

describe("npm run align", () => {
  it("RL with replayed fine-tuning rows: trains, reports the reward per task, saves a model that loads", async () => {
    const out = join(folder, "rl");
    const run = align(
      ["--checkpoint", chatModel, "--method", "rl", "--steps", "2", "--tasks", TASKS, "--replay", "4"].concat([
        "--replay-weight",
        "0.5",
        "--out",
        out,
      ]),
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/trained 2 steps in .*; saved /);
    expect(run.stderr).toMatch(/capital\s+\d\.\d\d → \d\.\d\d/);
    const checkpoint = await loadCheckpoint(out);
    expect(checkpoint.model.config.vocabSize).toBe(260);
    checkpoint.model.dispose();
  }, 120_000);

  it("DPO on the rule-made pairs: trains and saves", async () => {
    const out = join(folder, "dpo");
    const run = align(["--checkpoint", chatModel, "--method", "dpo", "--steps", "2", "--tasks", TASKS, "--out", out]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/\d+ preference pairs \(capital, addition\)/);
    const checkpoint = await loadCheckpoint(out);
    checkpoint.model.dispose();
  }, 120_000);

  it("says what is wrong with bad input, without a stack trace", () => {
    const cases: Array<[string[], RegExp]> = [
      [["--checkpoint", chatModel, "--method", "ppo"], /--method must be "rl" or "dpo", got "ppo"/],
      [["--method", "rl"], /give the fine-tuned chat model with --checkpoint/],
      [["--checkpoint", join(folder, "no-tokenizer"), "--method", "rl"], /has no tokenizer/],
      [
        ["--checkpoint", chatModel, "--method", "rl", "--tasks", "poetry"],
        /no training conversations for the tasks poetry/,
      ],
      [["--checkpoint", chatModel, "--method", "rl", "--steps", "two"], /--steps/],
    ];
    for (const [args, message] of cases) {
      const run = align(args);
      expect(run.status, args.join(" ")).not.toBe(0);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  }, 120_000);
});
