/**
 * `npm run chat` (scripts/chat.ts) as a user drives it: typed lines on stdin, Ctrl-D (end of input) and
 * Ctrl-C (SIGINT). The model is a tiny untrained one with the chat tokens: what it says does not matter
 * here, only that the program streams a reply, handles every command and odd input, and exits cleanly.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { addChatTokens, CharTokenizer, GPT, initBackend, saveCheckpoint } from "gpt-course";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(__dirname, "..");
const folder = mkdtempSync(join(tmpdir(), "chat-cli-"));
const checkpoint = join(folder, "chat");
const base = join(folder, "base");

beforeAll(async () => {
  await initBackend("cpu");
  const tokenizer = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?!.,'+");
  const baseModel = new GPT({
    vocabSize: tokenizer.vocabSize,
    contextLength: 32,
    numLayers: 1,
    numHeads: 2,
    embeddingDim: 16,
  });
  await saveCheckpoint(base, { model: baseModel, tokenizer });
  addChatTokens(tokenizer);
  const model = new GPT({
    vocabSize: tokenizer.vocabSize,
    contextLength: 32,
    numLayers: 1,
    numHeads: 2,
    embeddingDim: 16,
  });
  await saveCheckpoint(checkpoint, { model, tokenizer });
  baseModel.dispose();
  model.dispose();
});

afterAll(() => rmSync(folder, { recursive: true, force: true }));

interface Session {
  output: string;
  code: number | null;
}

/**
 * Runs the chat CLI, writes `lines`, and once every line has been answered (the prompt "you> " is back for the
 * last time) either closes stdin (Ctrl-D) or sends SIGINT (Ctrl-C): no fixed delays, so a slow machine only
 * makes the test slower.
 */
function session(args: string[], lines: string[], end: "eof" | "sigint" = "eof"): Promise<Session> {
  return new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      [resolve(repo, "node_modules/tsx/dist/cli.mjs"), "--conditions=source", "scripts/chat.ts", ...args],
      {
        cwd: repo,
        env: { ...process.env, GPT_BACKEND: "cpu" },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    let output = "";
    let sent = false;
    let ended = false;
    const prompts = () => output.split("you> ").length - 1;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      // Start typing once the program is ready (its greeting is printed after the model has loaded).
      if (!sent && output.includes("chat model:")) {
        sent = true;
        for (const line of lines) child.stdin.write(`${line}\n`);
      }
      // The first prompt, then one more after each line (a line that quits leaves no prompt: end at once).
      const quits = lines.some((line) => line === "/exit");
      if (sent && !ended && (quits || prompts() >= lines.length + 1)) {
        ended = true;
        if (end === "eof") child.stdin.end();
        else child.kill("SIGINT");
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", fail);
    child.on("close", (code) => done({ output, code }));
  });
}

describe("npm run chat", () => {
  it("streams replies, handles every command and odd input, and quits on Ctrl-D", async () => {
    const long = "the people of the united states ".repeat(20); // far longer than the 32-token context
    const { output, code } = await session(
      ["--checkpoint", checkpoint, "--max-new-tokens", "8"],
      ["", "   ", "what is 2 + 3?", "/temperature 0.7", "/temperature hot", long, "is it <here>?", "/reset", "/help"],
    );
    expect(code, output).toBe(0);
    expect(output).toMatch(/assistant> /); // a reply was written
    expect(output).toMatch(/\(temperature 0\.7\)/);
    expect(output).toMatch(/usage: \/temperature N with N ≥ 0; now 0\.7/);
    expect(output).toMatch(/only its end was used/); // the long message was cut to fit, not refused
    expect(output).toMatch(/cannot read that: CharTokenizer cannot encode "<"/);
    expect(output).toMatch(/\(conversation forgotten\)/);
    expect(output).toMatch(/commands: \/reset/);
    expect(output.trimEnd().endsWith("bye"), output).toBe(true);
  }, 60_000);

  it("quits with /exit and ignores what follows", async () => {
    const { output, code } = await session(["--checkpoint", checkpoint], ["/exit", "what is 2 + 3?"]);
    expect(code, output).toBe(0);
    expect(output).not.toMatch(/assistant> /);
    expect(output).toMatch(/bye/);
  }, 60_000);

  it("quits cleanly on Ctrl-C at the prompt", async () => {
    const { output, code } = await session(["--checkpoint", checkpoint], ["hello"], "sigint");
    expect(code, output).toBe(0);
    expect(output).toMatch(/bye/);
  }, 60_000);

  it("explains what is wrong with a base model or a missing checkpoint", async () => {
    const baseSession = await session(["--checkpoint", base], []);
    expect(baseSession.code).toBe(1);
    expect(baseSession.output).toMatch(/is a base model without chat tokens. Fine-tune it first/);
    const missing = await session(["--checkpoint", join(folder, "nowhere")], []);
    expect(missing.code).toBe(1);
    expect(missing.output).toMatch(/error: /);
  }, 60_000);
});
