/**
 * The chat page (web/, `npm run web`) in headless Chromium, as a learner uses it: `npm run web` builds and
 * serves it with a checkpoint, the page loads it, and a message gets a reply. The model is a tiny untrained
 * one: what it says does not matter, only that the page computes exactly what Node computes with the same
 * checkpoint (greedy tokens equal to Node's `generate`, the probabilities in "See inside" equal to Node's),
 * on WebAssembly and on WebGPU (Chromium's software adapter, SwiftShader), and that a bad checkpoint gets a
 * clear message. The page's state is read through its test hook, `window.__courseChat` (web/app.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addChatTokens,
  CharTokenizer,
  type ChatMessage,
  chatTokenIds,
  fitToContext,
  generate,
  GPT,
  initBackend,
  nextTokenProbabilities,
  saveCheckpoint,
  tf,
  type Tokenizer,
} from "gpt-course";
import { CHROMIUM } from "../scripts/figure-renderer.js";

const repo = path.resolve(__dirname, "..");
const folder = fs.mkdtempSync(path.join(tmpdir(), "web-page-"));
const CONTEXT = 32;
const MAX_NEW_TOKENS = 40; // longer than the context: the page's generation must slide its window as Node's does

/** What the page's test hook returns (web/app.ts, web/inside-panel.ts). */
interface PageStatus {
  state: string;
  backend?: string;
  backendDescription?: string;
  mode?: "chat" | "continue";
  error?: string;
}
interface PageReply {
  prompt: number[];
  tokens: number[];
  finishReason: string;
  seconds: number;
}
interface PageShown {
  step: number;
  written?: number;
  settled: boolean;
  inside: { context: number[]; candidates: Array<{ token: number; probability: number }>; attention: number[][][] };
}
type Hook = {
  __courseChat: { status(): PageStatus; lastReply(): PageReply | undefined; shown(): PageShown | undefined };
};

let tokenizer: CharTokenizer;
let model: GPT; // the chat checkpoint's model, in Node
let baseModel: GPT;
let server: ChildProcess;
let url: string;
let browser: Browser;
const speeds: string[] = [];

/** A folder with a checkpoint made by `save`, then changed by `damage`. */
async function checkpoint(
  name: string,
  save: (directory: string) => Promise<void>,
  damage?: (directory: string) => void,
): Promise<string> {
  const directory = path.join(folder, name);
  await save(directory);
  damage?.(directory);
  return directory;
}

beforeAll(async () => {
  await initBackend(); // Node's fastest backend here; the page uses its own
  tokenizer = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?!.,'+\n");
  const baseTokenizer = CharTokenizer.fromJSON(tokenizer.toJSON());
  baseModel = new GPT({ preset: "tiny", vocabSize: baseTokenizer.vocabSize, contextLength: CONTEXT, seed: 7 });
  await checkpoint("base", (directory) => saveCheckpoint(directory, { model: baseModel, tokenizer: baseTokenizer }));
  addChatTokens(tokenizer);
  model = new GPT({ preset: "tiny", vocabSize: tokenizer.vocabSize, contextLength: CONTEXT });
  const chat = await checkpoint("chat", (directory) => saveCheckpoint(directory, { model, tokenizer }));

  server = spawn(
    process.execPath,
    [
      path.join(repo, "node_modules/tsx/dist/cli.mjs"),
      "--conditions=source",
      "scripts/web.ts",
      "--port",
      "0",
      "--checkpoint",
      chat,
    ],
    {
      cwd: repo,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  url = await new Promise<string>((resolve, reject) => {
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const serving = output.match(/serving (http:\/\/\S+)/);
      if (serving) resolve(serving[1]);
    };
    server.stdout!.on("data", onData);
    server.stderr!.on("data", onData);
    server.on("exit", (code) => reject(new Error(`npm run web exited (${code}) before serving:\n${output}`)));
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // WebGPU: Chromium's software adapter (SwiftShader) answers on http://127.0.0.1, a secure context.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--enable-unsafe-webgpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}, 60_000);

afterAll(async () => {
  if (speeds.length > 0) console.log(`generation speed in the page: ${speeds.join("; ")}`);
  await browser?.close();
  server?.kill();
  model?.dispose();
  baseModel?.dispose();
  fs.rmSync(folder, { recursive: true, force: true });
});

/** Opens the page on `backend`; every console error and uncaught exception is collected in `errors`. */
async function openPage(backend: string, errors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${url}?backend=${backend}`);
  await waitForState(page, ["ready", "error", "no checkpoint"]);
  return page;
}

async function waitForState(page: Page, states: string[]): Promise<PageStatus> {
  await page.waitForFunction(
    (wanted) => wanted.includes((window as unknown as Hook).__courseChat?.status().state),
    states,
    { timeout: 30_000 },
  );
  return status(page);
}

const status = (page: Page) => page.evaluate(() => (window as unknown as Hook).__courseChat.status());

/** Types `text`, sends it, and waits for the whole reply and for "See inside" to show its last token. */
async function ask(page: Page, text: string): Promise<{ reply: PageReply; shown: PageShown }> {
  const before = await page.evaluate(() => (window as unknown as Hook).__courseChat.lastReply());
  await page.fill("#input", text);
  await page.click("#send");
  await page.waitForFunction(
    (previous) => {
      const hook = (window as unknown as Hook).__courseChat;
      const reply = hook.lastReply();
      const shown = hook.shown();
      return (
        hook.status().state === "ready" &&
        reply !== undefined &&
        JSON.stringify(reply) !== previous &&
        shown?.settled &&
        shown.step === Math.max(0, reply.tokens.length - 1)
      );
    },
    JSON.stringify(before ?? null),
    { timeout: 30_000 },
  );
  return page.evaluate(() => {
    const hook = (window as unknown as Hook).__courseChat;
    return { reply: hook.lastReply()!, shown: hook.shown()! };
  });
}

/** Node's greedy reply to the same prompt: the tokens the page must have written. */
async function nodeReply(
  node: GPT,
  prompt: number[],
  stopTokens: number[],
  maxNewTokens = MAX_NEW_TOKENS,
): Promise<number[]> {
  const { tokens } = await generate(node, prompt, { maxNewTokens, temperature: 0, stopTokens });
  return tokens[0];
}

/** The probabilities "See inside" shows equal Node's for the same context, to 1e-4. */
function expectNodeProbabilities(node: GPT, shown: PageShown, prompt: number[], written: number[]): void {
  const context = [...prompt, ...written.slice(0, shown.step)].slice(-CONTEXT);
  expect(shown.inside.context).toEqual(context);
  const logits = tf.tidy(() => {
    const all = node.forward(tf.tensor2d([context], [1, context.length], "int32"));
    return all.slice([0, context.length - 1, 0], [1, 1, node.config.vocabSize]).dataSync();
  });
  const probabilities = nextTokenProbabilities(logits);
  expect(shown.inside.candidates).toHaveLength(10);
  for (const { token, probability } of shown.inside.candidates)
    expect(Math.abs(probability - probabilities[token])).toBeLessThan(1e-4);
  const tenth = shown.inside.candidates[9].probability;
  expect(Array.from(probabilities).filter((p) => p > tenth + 1e-4).length).toBeLessThan(10); // no likelier token left out
  expect(shown.written).toBe(written[shown.step]);
  // one attention row per layer and head, over the context, each a distribution
  expect(shown.inside.attention).toHaveLength(node.config.numLayers);
  for (const row of shown.inside.attention.flat()) {
    expect(row).toHaveLength(context.length);
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
  }
}

const chatStops = (t: Tokenizer) => Object.values(chatTokenIds(t));

describe("the chat page", () => {
  it("on WebAssembly: replies with Node's greedy tokens, remembers the conversation, shows Node's probabilities", async () => {
    const errors: string[] = [];
    const page = await openPage("wasm", errors);
    expect(await status(page)).toMatchObject({ state: "ready", backend: "wasm", mode: "chat" });
    // The server's COOP/COEP headers make the page cross-origin isolated: SharedArrayBuffer, so wasm threads.
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    await page.fill("#max-new-tokens", String(MAX_NEW_TOKENS));
    await page.uncheck("#follow"); // the speed of generation alone (See inside still shows the last token at the end)

    // At each frame the browser draws, how much of the reply is written: more than one length means it streams.
    await page.evaluate(() => {
      const lengths = new Set<number>();
      (window as unknown as { lengths: Set<number> }).lengths = lengths;
      const watch = () => {
        const writing = document.querySelector(".message.assistant.writing");
        if (writing) lengths.add(writing.textContent?.length ?? 0);
        requestAnimationFrame(watch);
      };
      requestAnimationFrame(watch);
    });
    const first = "hello there";
    const { reply, shown } = await ask(page, first);
    expect(await page.evaluate(() => (window as unknown as { lengths: Set<number> }).lengths.size)).toBeGreaterThan(2);
    const messages: ChatMessage[] = [{ role: "user", content: first }];
    const budget = CONTEXT - Math.min(MAX_NEW_TOKENS, CONTEXT / 2);
    expect(reply.prompt).toEqual(fitToContext(tokenizer, messages, budget).prompt);
    expect(reply.tokens).toEqual(await nodeReply(model, reply.prompt, chatStops(tokenizer)));
    expectNodeProbabilities(model, shown, reply.prompt, reply.tokens);
    speeds.push(`wasm ${(reply.tokens.length / reply.seconds).toFixed(0)} tokens/s`);

    // A second turn: the page's history is the CLI's (oldest exchanges dropped to fit the context).
    await page.check("#follow");
    const second = "and now?";
    const next = await ask(page, second);
    messages.push({ role: "assistant", content: tokenizer.decode(reply.tokens) }, { role: "user", content: second });
    expect(next.reply.prompt).toEqual(fitToContext(tokenizer, messages, budget).prompt);
    expect(next.reply.tokens).toEqual(await nodeReply(model, next.reply.prompt, chatStops(tokenizer)));
    expectNodeProbabilities(model, next.shown, next.reply.prompt, next.reply.tokens);

    // "See inside" for an earlier token, chosen with the slider
    await page.locator("#step").fill("3");
    await page.waitForFunction(() => {
      const shown = (window as unknown as Hook).__courseChat.shown();
      return shown?.step === 3 && shown.settled;
    });
    expectNodeProbabilities(
      model,
      (await page.evaluate(() => (window as unknown as Hook).__courseChat.shown()))!,
      next.reply.prompt,
      next.reply.tokens,
    );
    expect(await page.locator("#probabilities .bars .point").count()).toBe(10); // the bar chart is drawn
    expect(await page.locator("#attention .hm image").count()).toBe(1); // and the heatmap
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it("on WebGPU (SwiftShader): the same tokens and probabilities", async () => {
    const errors: string[] = [];
    const page = await openPage("webgpu", errors);
    expect(await status(page)).toMatchObject({ state: "ready", backend: "webgpu", mode: "chat" });
    const maxNewTokens = 12; // a software GPU is slow
    await page.fill("#max-new-tokens", String(maxNewTokens));
    await page.uncheck("#follow");
    const { reply, shown } = await ask(page, "hello there");
    expect(reply.tokens).toEqual(await nodeReply(model, reply.prompt, chatStops(tokenizer), maxNewTokens));
    expectNodeProbabilities(model, shown, reply.prompt, reply.tokens);
    speeds.push(`webgpu (SwiftShader) ${(reply.tokens.length / reply.seconds).toFixed(1)} tokens/s`);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it("continues text with a base model picked as a folder", async () => {
    const errors: string[] = [];
    const page = await openPage("wasm", errors);
    await page.setInputFiles("#pick-folder", path.join(folder, "base"));
    expect(await waitForState(page, ["ready", "error"])).toMatchObject({ state: "ready", mode: "continue" });
    const text = "The Congress";
    const { reply } = await ask(page, text);
    expect(reply.prompt).toEqual(tokenizer.encode(text));
    expect(reply.tokens).toEqual(await nodeReply(baseModel, reply.prompt, [], 100));
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it("says clearly what is wrong with a bad checkpoint", async () => {
    const save = (directory: string) => saveCheckpoint(directory, { model, tokenizer });
    const bad: Array<[string, string, RegExp]> = [
      [
        "no weights",
        await checkpoint("no-weights", save, (d) => fs.rmSync(path.join(d, "model.safetensors"))),
        /a config\.json but no model\.safetensors/,
      ],
      [
        "corrupt weights",
        await checkpoint("corrupt", save, (d) => flipByte(path.join(d, "model.safetensors"))),
        /model\.safetensors is corrupt \(its SHA-256 checksum differs/,
      ],
      [
        "truncated weights",
        await checkpoint("truncated", save, (d) => truncate(path.join(d, "model.safetensors"))),
        /truncated/,
      ],
      [
        "no tokenizer",
        await checkpoint("no-tokenizer", (d) => saveCheckpoint(d, { model })),
        /has no tokenizer saved with it/,
      ],
      [
        "not a checkpoint",
        await checkpoint("not-a-checkpoint", save, (d) =>
          fs.writeFileSync(path.join(d, "config.json"), '{"hello": 1}'),
        ),
        /is not a gpt-course-checkpoint config/,
      ],
    ];
    const errors: string[] = [];
    const page = await openPage("wasm", errors);
    for (const [what, directory, message] of bad) {
      await page.setInputFiles("#pick-folder", directory);
      await page.waitForFunction(() => {
        const { state, error } = (window as unknown as Hook).__courseChat.status();
        return state !== "loading" && error !== undefined;
      });
      expect((await status(page)).error, what).toMatch(message);
      expect(await page.locator("#error").isVisible(), what).toBe(true);
    }
    // and a good one loads again after them
    await page.setInputFiles(
      "#pick-files",
      ["config.json", "model.safetensors"].map((name) => path.join(folder, "chat", name)),
    );
    expect(await waitForState(page, ["ready", "error"])).toMatchObject({ state: "ready", mode: "chat" });
    expect(await page.locator("#error").isVisible()).toBe(false);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});

/** One bit of the last weight changed: the checksum in config.json no longer matches. */
function flipByte(file: string): void {
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 3] ^= 0x40;
  fs.writeFileSync(file, bytes);
}

/** The end of the file cut off, and the checksums removed (as in a checkpoint saved before they existed). */
function truncate(file: string): void {
  fs.writeFileSync(file, fs.readFileSync(file).subarray(0, -1000));
  const config = path.join(path.dirname(file), "config.json");
  const json = JSON.parse(fs.readFileSync(config, "utf8"));
  delete json.checksums;
  fs.writeFileSync(config, JSON.stringify(json));
}
