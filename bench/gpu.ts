/**
 * The course GPT on a GPU through WebGPU (Dawn, npm `webgpu`), measured: one short script for a machine with a GPU.
 *
 *   npm run bench:gpu                                  # on a machine with a GPU and a Vulkan driver
 *   npm run bench:gpu -- --quick                       # small shapes: checks the script itself (any machine)
 *   EGL_PLATFORM=surfaceless GPT_WEBGPU_DAWN=backend=opengl npm run bench:gpu -- --quick   # no GPU: Mesa
 *
 * What it measures, in this order (each part prints as it finishes, so a run cut short still reports):
 *   1. the adapter WebGPU found (vendor, architecture, device);
 *   2. loss equality: the same training steps (same weights, same batches) on wasm and on WebGPU, step by step;
 *   3. training tokens/s on the reference config (vocab 65, block 128, 4 layers, 4 heads, 128 wide, batch 16)
 *      and on GPT-2 124M's shape (batch 2 × 256 tokens); step = forward + backward + AdamW, as `npm run bench`;
 *   4. greedy generation tokens/s with the KV cache, GPT-2 124M's shape (random weights: speed does not depend
 *      on them), batch 1, 50 new tokens.
 * Figures go to bench/results/local/gpu-<date>.json (or --out DIR). Compare them with `npm run bench` on the
 * CPU (bench/NOTES.md): the issue's target is 10x our CPU training figure at GPT-2's shape.
 *
 * What a GPU machine needs: Node 20 and this repository's node_modules (npm `webgpu` ships Dawn), and a Vulkan
 * loader with the GPU's driver: `ldconfig -p | grep libvulkan` must print a line (Debian: libvulkan1; NVIDIA's
 * driver installs its ICD file; if the loader cannot find it, point VK_DRIVER_FILES at nvidia_icd.json).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { GPT, type GPTConfigInput, generate, initBackend, presets, tf } from "gpt-course";
import { benchTrainingStep, encodeCharacters, gitCommit, loadText, median, sampleBatches } from "./common.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const outFlag = argv.indexOf("--out");
const outDir = outFlag >= 0 ? argv[outFlag + 1] : path.join(__dirname, "results", "local");

/** The shapes measured; --quick shrinks them so that a software renderer gets through in a minute or two. */
const reference: GPTConfigInput = { vocabSize: 65, contextLength: 128, numLayers: 4, numHeads: 4, embeddingDim: 128 };
const gpt2Shape: GPTConfigInput = quick
  ? { vocabSize: 50257, contextLength: 64, numLayers: 2, numHeads: 4, embeddingDim: 128 }
  : { ...presets.gpt2 };
const trainingRuns = [
  { name: "reference", config: reference, batchSize: quick ? 4 : 16, blockSize: quick ? 32 : 128 },
  { name: "gpt2-124M", config: gpt2Shape, batchSize: 2, blockSize: quick ? 32 : 256 },
];
const timedSteps = quick ? 3 : 10;
const warmupSteps = 2; // the first steps compile shaders

const figures: Record<string, unknown> = { date: new Date().toISOString(), commit: gitCommit(), quick };
function report(key: string, value: unknown, line: string): void {
  figures[key] = value;
  console.log(line);
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(
    path.join(outDir, `gpu-${String(figures.date).slice(0, 19).replace(/[:T]/g, "-")}.json`),
    `${JSON.stringify(figures, null, 2)}\n`,
  );
}

/** Training steps of a freshly seeded model on fixed batches: the losses and the median step time. */
async function train(config: GPTConfigInput, batches: Int32Array[], batchSize: number, blockSize: number) {
  const model = new GPT({ ...config, contextLength: Math.max(blockSize, 1), dropout: 0, seed: 1337 });
  model.train();
  const training = benchTrainingStep(model);
  const losses: number[] = [];
  const stepMs: number[] = [];
  for (const [s, windows] of batches.entries()) {
    const start = performance.now();
    const value = training.step(windows, batchSize, blockSize);
    losses.push((await value.data())[0]); // an asynchronous read: WebGPU in Node cannot read synchronously
    value.dispose();
    if (s >= warmupSteps) stepMs.push(performance.now() - start);
  }
  training.dispose();
  model.dispose();
  const ms = median(stepMs);
  return { losses, msPerStep: ms, tokensPerSecond: (batchSize * blockSize * 1000) / ms };
}

async function main(): Promise<void> {
  const { ids } = encodeCharacters(loadText(), 65);

  // 2. loss equality first on wasm (the CPU engine), then the same steps on WebGPU
  const equalitySteps = 5;
  const equalityBatches = sampleBatches(ids, equalitySteps, 4, 64, 99);
  await initBackend("wasm");
  const onWasm = await train(reference, equalityBatches, 4, 64);

  const backend = await initBackend("webgpu");
  // 1. the adapter
  // biome-ignore lint/suspicious/noExplicitAny: tfjs does not export the WebGPU backend's type
  const adapterInfo = (tf.backend() as any).adapterInfo ?? {};
  report(
    "adapter",
    { description: backend.description, ...adapterInfo },
    `WebGPU: ${backend.description} ${JSON.stringify(adapterInfo)}`,
  );
  const onGpu = await train(reference, equalityBatches, 4, 64);
  const worst = Math.max(...onGpu.losses.map((loss, i) => Math.abs(loss - onWasm.losses[i])));
  report(
    "lossEquality",
    { wasm: onWasm.losses, webgpu: onGpu.losses, maxAbsDifference: worst },
    `loss equality over ${equalitySteps} steps: wasm ${onWasm.losses.map((l) => l.toFixed(4)).join(" ")}, ` +
      `webgpu ${onGpu.losses.map((l) => l.toFixed(4)).join(" ")}; largest difference ${worst.toExponential(2)}`,
  );

  // 3. training speed
  for (const run of trainingRuns) {
    const batches = sampleBatches(ids, warmupSteps + timedSteps, run.batchSize, run.blockSize, 1234);
    const result = await train(run.config, batches, run.batchSize, run.blockSize);
    report(
      `training-${run.name}`,
      { ...run, ...result },
      `training ${run.name} (batch ${run.batchSize} × ${run.blockSize}): ${result.tokensPerSecond.toFixed(0)} tokens/s, ` +
        `${result.msPerStep.toFixed(1)} ms/step (median of ${timedSteps}), loss ${result.losses[0].toFixed(3)} → ` +
        `${result.losses.at(-1)?.toFixed(3)}`,
    );
  }

  // 4. generation with the KV cache
  const model = new GPT({ ...gpt2Shape, dropout: 0, seed: 1337 });
  model.eval();
  const prompt = [15496, 11, 616, 3290, 318, 13779, 290]; // "Hello, my dog is cute and" in GPT-2's tokens
  const newTokens = quick ? 10 : 50;
  await generate(model, prompt, { maxNewTokens: newTokens, temperature: 0 }); // warm-up: shaders
  const start = performance.now();
  await generate(model, prompt, { maxNewTokens: newTokens, temperature: 0 });
  const tokensPerSecond = (newTokens * 1000) / (performance.now() - start);
  model.dispose();
  report(
    "generation-gpt2-124M",
    { tokensPerSecond, newTokens },
    `generation, GPT-2 124M's shape, batch 1, KV cache: ${tokensPerSecond.toFixed(1)} tokens/s`,
  );
}

main()
  .then(() => process.exit(0))
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
