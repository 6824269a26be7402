/**
 * Training (and generation) speed of the course GPT, side by side with PyTorch.
 *
 *   npm run bench                         # 5 warm-up + 20 timed steps, PyTorch reference if installed
 *   npm run bench -- --profile            # also a per-kernel profile of one training step (top 10)
 *   npm run bench -- --steps 40 --no-pytorch --no-generation --backend wasm
 *
 * Reference config: vocab 65 (characters of the State of the Union addresses), block 128, 4 layers, 4 heads,
 * 128 wide, batch 16; one step = forward + backward + AdamW update. Reports the median step (ms and training
 * tokens/s), the process's peak RSS, and writes bench/results/<date>-<commit>.json plus a line in
 * bench/RESULTS.md. Both are kept in git, so only runs of a committed tree go there: on a tree with
 * uncommitted changes (commit "<hash>-dirty") the JSON and the line go to bench/results/local/ (its own
 * RESULTS.md), which git ignores. --no-save writes nothing. The PyTorch reference (bench/pytorch_reference.py:
 * same architecture, same batches, 2 threads) runs in the same invocation when Debian's python3-torch is
 * importable.
 *
 * Flags: --steps N (20) --warmup N (5) --batch N (16) --block N (128) --layers N (4) --heads N (4)
 *        --width N (128) --backend NAME (lib's initBackend default) --profile --no-pytorch --no-generation
 *        --gen-tokens N (256) --no-gpt2 (skip GPT-2 124M: generation and a training step) --no-save
 *        --torch-threads N (default: probe 1/2 × OpenBLAS 1/2) --rounds N (3: ours and PyTorch alternately)
 *        --profile-detail (by input shapes) --profile-all (every kernel, not the top 10) --profile-wall (wall-clock)
 *        --without K1,K2 (disable some of lib/kernels' wasm kernels, e.g. --without BatchMatMul,Attention)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { generate, GPT, GPT2Tokenizer, initBackend, loadGPT2, presets, Random, tf } from "gpt-course";
import {
  BENCH_OPTIMIZER,
  benchTrainingStep,
  encodeCharacters,
  gitCommit,
  loadText,
  median,
  repo,
  resultsFolder,
  sampleBatches,
  torchPython,
  writeWindows,
} from "./common.js";

// ---------------------------------------------------------------------------------------------- options
const argv = process.argv.slice(2);
function flag(name: string): boolean {
  return argv.includes(`--${name}`);
}
function option(name: string, fallback: number): number;
function option(name: string, fallback: string | undefined): string | undefined;
function option(name: string, fallback: number | string | undefined): number | string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= argv.length) return fallback;
  return typeof fallback === "number" ? Number(argv[i + 1]) : argv[i + 1];
}

const config = {
  vocabSize: 65,
  contextLength: option("block", 128),
  numLayers: option("layers", 4),
  numHeads: option("heads", 4),
  embeddingDim: option("width", 128),
  dropout: 0,
  seed: 1337,
};
const batchSize = option("batch", 16);
const warmupSteps = option("warmup", 5);
const timedSteps = option("steps", 20);
const genTokens = option("gen-tokens", 256);
/** PyTorch's thread settings: fixed by --torch-threads N (OpenBLAS then as it starts), else the fastest probed. */
const pinnedTorchThreads = option("torch-threads", undefined);

// ---------------------------------------------------------------------------------------------- helpers
function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024; // maxRSS is in kilobytes
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;

// --------------------------------------------------------------------------------------------- training
async function main(): Promise<void> {
  const backend = await initBackend(option("backend", undefined));
  // --without A,B: drop some of lib/kernels' replacements (A/B measurements of one kernel at a time)
  const without = option("without", undefined);
  if (without && backend.name === "wasm") {
    const kernels = await import("../lib/kernels/index.ts");
    kernels.unregisterWasmKernels(without.split(","));
    console.log(`without custom kernels: ${without}`);
  }
  const { ids } = encodeCharacters(loadText(), config.vocabSize);
  const T = config.contextLength;
  const batches = sampleBatches(
    ids,
    Math.max(warmupSteps + timedSteps, PROBE_STEPS.warmupSteps + PROBE_STEPS.timedSteps),
    batchSize,
    T,
    1234,
  );
  console.log(
    `backend: ${backend.description}; data: ${ids.length.toLocaleString()} characters; model: ${config.numLayers} layers, ` +
      `${config.numHeads} heads, ${config.embeddingDim} wide, block ${T}, batch ${batchSize}`,
  );

  const model = new GPT(config);
  model.train();
  const training = benchTrainingStep(model);
  function trainStep(windows: Int32Array): number {
    const value = training.step(windows, batchSize, T);
    const loss = value.dataSync()[0];
    value.dispose();
    return loss;
  }

  // Rounds: our timed steps, then PyTorch's run, again and again; the machine's speed drifts over minutes
  // (shared cores), and alternating exposes both sides to the same drift. The ratio is the median round's.
  const torchAvailable = !flag("no-pytorch") && torchPython() !== undefined;
  const rounds = torchAvailable ? option("rounds", 3) : 1;
  const torchSettings = torchAvailable ? bestTorchSettings(batches) : undefined;
  const stepMs: number[] = [];
  const cpuMs: number[] = [];
  const losses: number[] = []; // first round: the same batches as PyTorch's
  // biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
  const pytorchRuns: any[] = [];
  const roundRatios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const roundMs: number[] = [];
    for (let s = round === 0 ? 0 : warmupSteps; s < warmupSteps + timedSteps; s++) {
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      const loss = trainStep(batches[s]);
      const cpu = process.cpuUsage(cpuStart);
      if (round === 0) losses.push(loss);
      if (s >= warmupSteps) {
        roundMs.push(performance.now() - start);
        cpuMs.push((cpu.user + cpu.system) / 1000);
      }
    }
    stepMs.push(...roundMs);
    const run = torchSettings ? runPyTorch(batches, torchSettings) : undefined;
    if (run) {
      const ours = (batchSize * T * 1000) / median(roundMs);
      pytorchRuns.push(run);
      roundRatios.push(ours / run.tokens_per_second);
      console.log(
        `round ${round + 1}/${rounds}: ours ${ours.toFixed(0)} tokens/s, PyTorch ${run.tokens_per_second.toFixed(0)}: ${(ours / run.tokens_per_second).toFixed(2)}x`,
      );
    }
  }
  const msPerStep = median(stepMs);
  const tokensPerSecond = (batchSize * T * 1000) / msPerStep;
  const trainPeakRss = peakRssBytes();
  const wasmHeapBytes =
    // biome-ignore lint/suspicious/noExplicitAny: tfjs does not export the wasm backend's type
    backend.name === "wasm" ? ((tf.backend() as any).wasm?.HEAPU8?.length as number | undefined) : undefined;
  console.log(
    `training: ${tokensPerSecond.toFixed(0)} tokens/s, ${msPerStep.toFixed(1)} ms/step (median of ${stepMs.length}; ` +
      `min ${Math.min(...stepMs).toFixed(1)}, max ${Math.max(...stepMs).toFixed(1)}; CPU time ${median(cpuMs).toFixed(1)} ms/step), optimizer ${BENCH_OPTIMIZER}, ` +
      `loss ${losses[0].toFixed(3)} → ${losses[losses.length - 1].toFixed(3)}, peak RSS ${mb(trainPeakRss)}, ` +
      `live tensors ${tf.memory().numTensors}${wasmHeapBytes ? `, wasm heap ${mb(wasmHeapBytes)}` : ""}`,
  );

  // ------------------------------------------------------------------------------------------ profile
  let profile: Array<{ kernel: string; ms: number; calls: number; share: number }> | undefined;
  if (flag("profile")) {
    // Per-kernel times in CPU time of this process, not wall-clock time: on a shared machine the wall clock
    // also counts time other processes ran. (Single-threaded wasm: exact. With worker threads it includes
    // their work too, which is what the kernel cost.) --profile-wall: wall-clock time instead, which shows
    // what the second thread saves and what runs on one thread only.
    const activeBackend = tf.backend() as tf.KernelBackend & { time(f: () => void): Promise<tf.BackendTimingInfo> };
    const wallTime = activeBackend.time.bind(activeBackend);
    if (!flag("profile-wall"))
      activeBackend.time = async (f: () => void) => {
        const start = process.cpuUsage();
        f();
        const used = process.cpuUsage(start);
        return { kernelMs: (used.user + used.system) / 1000 };
      };
    const info = await tf.profile(() => {
      trainStep(batches[batches.length - 1]);
    });
    activeBackend.time = wallTime;
    const byKernel = new Map<string, { ms: number; calls: number }>();
    for (const k of info.kernels) {
      const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
      entry.ms += Number(k.kernelTimeMs) || 0;
      entry.calls++;
      byKernel.set(k.name, entry);
    }
    const total = [...byKernel.values()].reduce((sum, e) => sum + e.ms, 0);
    profile = [...byKernel.entries()]
      .map(([kernel, e]) => ({ kernel, ms: e.ms, calls: e.calls, share: e.ms / total }))
      .sort((a, b) => b.ms - a.ms);
    console.log(
      `profile: peak tensor memory in the step ${mb(info.peakBytes)} (${mb(info.newBytes)} new), before it ${mb(tf.memory().numBytes)}`,
    );
    console.log(
      `profile of one step: ${info.kernels.length} kernel calls, ${total.toFixed(1)} ms of CPU time inside kernels (custom-gradient scopes count their inner kernels again)`,
    );
    if (flag("profile-detail")) {
      const byShape = new Map<string, { ms: number; calls: number }>();
      for (const k of info.kernels) {
        const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join("")}`;
        const entry = byShape.get(key) ?? { ms: 0, calls: 0 };
        entry.ms += Number(k.kernelTimeMs) || 0;
        entry.calls++;
        byShape.set(key, entry);
      }
      for (const [key, e] of [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 40)) {
        console.log(`  ${key.padEnd(70)} ${e.ms.toFixed(1).padStart(8)} ms  ${e.calls} calls`);
      }
    }
    for (const p of profile.slice(0, flag("profile-all") ? profile.length : 10)) {
      console.log(
        `  ${p.kernel.padEnd(24)} ${p.ms.toFixed(1).padStart(8)} ms ${(100 * p.share).toFixed(1).padStart(5)}%  ${p.calls} calls`,
      );
    }
  }

  // --------------------------------------------------------------------------------------- generation
  // lib's generate(): 256 new tokens after a 16-token prompt, batch 1, seeded sampling (temperature 1),
  // with and without the KV cache (the same tokens either way: tests/generation.test.ts). The model has
  // the reference shape but a context long enough for prompt + new tokens: once a sequence outgrows the
  // context, every position shifts at each step and nothing cached can be reused.
  let generation: { withCache: number; withoutCache: number; tokens: number } | undefined;
  if (!flag("no-generation")) {
    const prompt = Array.from(batches[0].subarray(0, 16));
    const generator = new GPT({ ...config, contextLength: Math.max(T, prompt.length + genTokens) });
    const tokensPerSecondWith = async (useCache: boolean): Promise<number> => {
      const start = performance.now();
      await generate(generator, prompt, { maxNewTokens: genTokens, useCache, seed: 7 });
      return (genTokens * 1000) / (performance.now() - start);
    };
    await tokensPerSecondWith(true); // warm-up
    generation = {
      withCache: await tokensPerSecondWith(true),
      withoutCache: await tokensPerSecondWith(false),
      tokens: genTokens,
    };
    generator.dispose();
    console.log(
      `generation (${genTokens} new tokens, batch 1): ${generation.withCache.toFixed(1)} tokens/s with KV cache, ` +
        `${generation.withoutCache.toFixed(1)} without (${(generation.withCache / generation.withoutCache).toFixed(1)}x)`,
    );
  }

  // ----------------------------------------------------------------------------------------- GPT-2 124M
  // Chapter 08's model: greedy generation with the KV cache, batch 1, beside PyTorch's with the same shape. The
  // downloaded weights where models/gpt2 has them (`npm run download:gpt2 -- gpt2`), else random weights of the
  // same shape: the speed does not depend on the values. Decoding a token reads all 500 MB of weights once.
  // And a training step at its shape (batch 2 × 256 tokens, AdamW), beside PyTorch's in its fastest settings
  // for that shape: what fine-tuning GPT-2 on a laptop costs, in time and in memory (wasm's heap stops at 4 GiB).
  let gpt2: Gpt2Figures | undefined;
  let gpt2Training: Gpt2TrainingFigures | undefined;
  if (!flag("no-gpt2")) {
    gpt2 = await benchGpt2(torchAvailable);
    gpt2Training = benchGpt2Training(torchAvailable);
  }
  const peakRss = peakRssBytes();

  // ---------------------------------------------------------------------------------------- PyTorch
  // PyTorch's figures: its median round; the ratio: the median of the rounds' ratios
  const pytorch =
    pytorchRuns.length > 0
      ? [...pytorchRuns].sort((a, b) => a.tokens_per_second - b.tokens_per_second)[pytorchRuns.length >> 1]
      : undefined;
  const tokensRatio = median(roundRatios);
  const singleThreaded = backend.threads === 1;
  if (pytorch) {
    console.log(
      `PyTorch ${pytorch.torch_version} (${pytorch.threads} threads, BLAS ${pytorch.blas} with ${pytorch.blas_threads} threads): ${pytorch.tokens_per_second.toFixed(0)} tokens/s, ` +
        `${pytorch.ms_per_step.toFixed(1)} ms/step (CPU time ${pytorch.cpu_ms_per_step.toFixed(1)} ms/step), loss ${pytorch.losses[0].toFixed(3)} → ${pytorch.losses[pytorch.losses.length - 1].toFixed(3)}, ` +
        `peak RSS ${mb(pytorch.peak_rss_bytes)}`,
    );
    console.log(
      `ratio ours/PyTorch: ${tokensRatio.toFixed(2)}x tokens/s (median of ${roundRatios.length} rounds: ${roundRatios.map((r) => r.toFixed(2)).join(", ")}), ` +
        (singleThreaded && pytorch.threads === 1 && pytorch.blas_threads === "1"
          ? `${(pytorch.cpu_ms_per_step / median(cpuMs)).toFixed(2)}x by CPU time per step (both 1 thread: work done, robust to other load), `
          : "") +
        `${(trainPeakRss / pytorch.peak_rss_bytes).toFixed(2)}x peak RSS`,
    );
  }

  // ---------------------------------------------------------------------------------------- results
  const commit = gitCommit();
  const load =
    os.loadavg()[0] > 0
      ? os
          .loadavg()
          .map((l) => l.toFixed(1))
          .join("/")
      : ""; // shared machine: context for the figures
  const result = {
    date: new Date().toISOString(),
    commit,
    machine: {
      cpu: os.cpus()[0]?.model ?? "unknown",
      cores: os.cpus().length,
      memoryBytes: os.totalmem(),
      node: process.version,
    },
    backend: backend.name,
    backendDescription: backend.description,
    wasmThreads: backend.name === "wasm" ? backend.threads : undefined,
    config: { ...config, batchSize, warmupSteps, timedSteps },
    optimizer: BENCH_OPTIMIZER,
    training: {
      tokensPerSecond,
      msPerStep,
      stepMs,
      cpuMsPerStep: median(cpuMs),
      losses,
      peakRssBytes: trainPeakRss,
      wasmHeapBytes,
    },
    generation,
    gpt2,
    gpt2Training,
    peakRssBytes: peakRss,
    profileTop: profile?.slice(0, 15),
    pytorch,
    settings: [
      ...(option("without", undefined) ? [`--without ${option("without", undefined)}`] : []),
      ...["GPT_WASM_THREADS", "GPT_WASM_KERNELS", "GPT_FREE_GRADIENTS", "GPT_WASM_SIMD_KERNELS", "GPT_WASM_FMA"]
        .filter((name) => process.env[name] !== undefined)
        .map((name) => `${name}=${process.env[name]}`),
      ...(load ? [`load ${load}`] : []),
    ].join(" "),
    ratio: pytorch
      ? {
          tokensPerSecond: tokensRatio,
          rounds: roundRatios,
          cpuTimePerStep:
            singleThreaded && pytorch.threads === 1 && pytorch.blas_threads === "1"
              ? pytorch.cpu_ms_per_step / median(cpuMs)
              : undefined,
          peakRss: trainPeakRss / pytorch.peak_rss_bytes,
        }
      : undefined,
  };
  if (!flag("no-save")) {
    // a committed tree: bench/results/ and bench/RESULTS.md (in git); uncommitted changes: bench/results/local/
    const { folder: resultsDir, committed } = resultsFolder(commit);
    fs.mkdirSync(resultsDir, { recursive: true });
    const file = path.join(resultsDir, `${result.date.slice(0, 19).replace(/[:T]/g, "-")}-${commit}.json`);
    fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    const resultsMd = path.join(committed ? __dirname : resultsDir, "RESULTS.md");
    if (!fs.existsSync(resultsMd)) {
      fs.writeFileSync(
        resultsMd,
        `# Benchmark results${committed ? "" : " of uncommitted trees (not in git)"}\n\n` +
          "One line per `npm run bench` run (reference config unless noted).\n\n" +
          "| date | commit | backend | tokens/s | ms/step | CPU ms/step | peak RSS | gen tok/s cache / none | PyTorch tokens/s (threads) | PyTorch CPU ms/step | PyTorch RSS | ratio tok/s | ratio RSS | settings |\n" +
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
      );
    }
    const cells = [
      result.date.slice(0, 16).replace("T", " "),
      commit,
      backend.description,
      tokensPerSecond.toFixed(0),
      msPerStep.toFixed(1),
      median(cpuMs).toFixed(0),
      mb(trainPeakRss),
      generation ? `${generation.withCache.toFixed(0)} / ${generation.withoutCache.toFixed(0)}` : "-",
      pytorch ? `${pytorch.tokens_per_second.toFixed(0)} (${pytorch.threads}×${pytorch.blas_threads})` : "-",
      pytorch ? pytorch.cpu_ms_per_step.toFixed(0) : "-",
      pytorch ? mb(pytorch.peak_rss_bytes) : "-",
      result.ratio ? result.ratio.tokensPerSecond.toFixed(2) : "-",
      result.ratio ? result.ratio.peakRss.toFixed(2) : "-",
      result.settings || "default",
    ];
    const nonDefault =
      JSON.stringify(config) !==
        JSON.stringify({ ...config, contextLength: 128, numLayers: 4, numHeads: 4, embeddingDim: 128 }) ||
      batchSize !== 16;
    if (nonDefault)
      cells[2] += ` (L${config.numLayers} H${config.numHeads} C${config.embeddingDim} T${T} B${batchSize})`;
    fs.appendFileSync(resultsMd, `| ${cells.join(" | ")} |\n`);
    console.log(`wrote ${path.relative(repo, file)} and a line in ${path.relative(repo, resultsMd)}`);
  }
}

/** What the GPT-2 figures keep of a PyTorch run. */
interface TorchFigures {
  tokensPerSecond: number;
  threads: number;
  blasThreads: string;
  peakRssBytes: number;
}

// biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
function torchFigures(run: any): TorchFigures {
  return {
    tokensPerSecond: run.tokens_per_second,
    threads: run.threads,
    blasThreads: run.blas_threads,
    peakRssBytes: run.peak_rss_bytes,
  };
}

interface Gpt2Figures {
  weights: "downloaded" | "random";
  loadSeconds: number;
  peakRssBytes: number;
  tokensPerSecond: number;
  pytorch?: TorchFigures;
  ratio?: number;
}

async function benchGpt2(withPyTorch: boolean): Promise<Gpt2Figures> {
  const directory = path.join(repo, "models", "gpt2");
  const downloaded = fs.existsSync(path.join(directory, "model.safetensors"));
  const loadStart = performance.now();
  const model = downloaded ? await loadGPT2(directory) : new GPT({ preset: "gpt2", dropout: 0, seed: 1337 });
  const loadSeconds = (performance.now() - loadStart) / 1000;
  model.eval();
  const prompt = new GPT2Tokenizer().encode("Hello, my dog is cute and");
  const newTokens = 50;
  const tokensPerSecond = async () => {
    const start = performance.now();
    await generate(model, prompt, { maxNewTokens: newTokens, temperature: 0 });
    return (newTokens * 1000) / (performance.now() - start);
  };
  await tokensPerSecond(); // warm-up, as PyTorch's
  const figures: Gpt2Figures = {
    weights: downloaded ? "downloaded" : "random",
    loadSeconds,
    peakRssBytes: peakRssBytes(),
    tokensPerSecond: await tokensPerSecond(),
  };
  model.dispose();
  console.log(
    `GPT-2 124M (${figures.weights} weights): ${downloaded ? "loaded" : "built"} in ${loadSeconds.toFixed(1)} s, ` +
      `peak RSS ${mb(figures.peakRssBytes)}, greedy generation ${figures.tokensPerSecond.toFixed(1)} tokens/s with KV cache`,
  );
  if (withPyTorch) {
    // PyTorch's best thread settings for matrix-vector work can differ from training's: probed again
    const fastest = fastestTorch("generation", (settings) =>
      runPyTorchJson(
        { mode: "generate", ...presets.gpt2, seed: 1337, threads: settings.threads, prompt, newTokens },
        settings,
      ),
    );
    if (fastest) {
      const { run } = fastest;
      figures.pytorch = torchFigures(run);
      figures.ratio = figures.tokensPerSecond / run.tokens_per_second;
      console.log(
        `GPT-2 124M in PyTorch (${describeTorch(fastest.settings)}, the fastest of four): ` +
          `${run.tokens_per_second.toFixed(1)} tokens/s, peak RSS ${mb(run.peak_rss_bytes)}: ours ${figures.ratio.toFixed(2)}x`,
      );
    }
  }
  return figures;
}

interface Gpt2TrainingFigures {
  batchSize: number;
  blockSize: number;
  msPerStep: number;
  tokensPerSecond: number;
  firstStepMs: number;
  peakRssBytes: number;
  wasmHeapBytes?: number;
  pytorch?: TorchFigures & { msPerStep: number };
  ratio?: number;
}

/**
 * Training steps (forward, backward, AdamW) at GPT-2 124M's shape, batch 2 × 256 random tokens (the speed does
 * not depend on them): 1 warm-up step (it also grows the heap to its working size, slow where page faults
 * are) and 2 timed ones; then PyTorch on the same batches, its four thread settings probed (the best for the
 * small model is not the best here) and the fastest kept.
 */
function benchGpt2Training(withPyTorch: boolean): Gpt2TrainingFigures {
  const [B, T, steps] = [2, 256, { warmupSteps: 1, timedSteps: 2 }];
  const shape = { ...presets.gpt2, contextLength: T, dropout: 0, seed: 1337 };
  const random = new Random(42);
  const batches = Array.from({ length: steps.warmupSteps + steps.timedSteps }, () =>
    Int32Array.from({ length: B * (T + 1) }, () => random.int(shape.vocabSize)),
  );
  const model = new GPT(shape);
  model.train();
  const training = benchTrainingStep(model);
  const stepMs = batches.map((windows) => {
    const start = performance.now();
    training.step(windows, B, T).dispose();
    return performance.now() - start;
  });
  const msPerStep = median(stepMs.slice(steps.warmupSteps));
  const figures: Gpt2TrainingFigures = {
    batchSize: B,
    blockSize: T,
    msPerStep,
    tokensPerSecond: (B * T * 1000) / msPerStep,
    firstStepMs: stepMs[0],
    peakRssBytes: peakRssBytes(),
    // biome-ignore lint/suspicious/noExplicitAny: tfjs does not export the wasm backend's type
    wasmHeapBytes: (tf.backend() as any).wasm?.HEAPU8?.length as number | undefined,
  };
  training.dispose();
  model.dispose();
  console.log(
    `GPT-2 124M training step (batch ${B} × ${T}, AdamW): ${(msPerStep / 1000).toFixed(2)} s (${figures.tokensPerSecond.toFixed(0)} tokens/s; ` +
      `first step ${(stepMs[0] / 1000).toFixed(1)} s), peak RSS ${mb(figures.peakRssBytes)}` +
      (figures.wasmHeapBytes ? `, wasm heap ${mb(figures.wasmHeapBytes)} of 4096 MB` : ""),
  );
  const fastest = withPyTorch
    ? fastestTorch("GPT-2 training", (settings) => runPyTorch(batches, settings, steps, { ...shape, batchSize: B }))
    : undefined;
  if (fastest) {
    const { run, settings } = fastest;
    figures.pytorch = { ...torchFigures(run), msPerStep: run.ms_per_step };
    figures.ratio = figures.tokensPerSecond / run.tokens_per_second;
    console.log(
      `GPT-2 124M training step in PyTorch (${describeTorch(settings)}, the fastest of four): ${(run.ms_per_step / 1000).toFixed(2)} s ` +
        `(${run.tokens_per_second.toFixed(0)} tokens/s), peak RSS ${mb(run.peak_rss_bytes)}: ours ${figures.ratio.toFixed(2)}x`,
    );
  }
  return figures;
}

/** How PyTorch runs: torch's own threads, and OpenBLAS's (undefined: OpenBLAS's default, one per CPU). */
interface TorchSettings {
  threads: number;
  blasThreads?: number;
}

/** Short PyTorch training runs for the probe: 3 warm-up + 8 timed steps. */
const PROBE_STEPS = { warmupSteps: 3, timedSteps: 8 };

/** PyTorch's settings for the training rounds: --torch-threads N pins them, else the fastest of the probe. */
function bestTorchSettings(batches: Int32Array[]): TorchSettings | undefined {
  if (pinnedTorchThreads !== undefined) return { threads: Number(pinnedTorchThreads) };
  return fastestTorch("training", (settings) => runPyTorch(batches, settings, PROBE_STEPS))?.settings;
}

/**
 * PyTorch's fastest configuration on this machine for one kind of work: `run` under torch threads 1 or 2 ×
 * OpenBLAS threads 1 or 2, the one with the most tokens per second kept. Both pools fight over the same cores,
 * and which pairing wins depends on the machine and the work (here, training: 1 torch thread with OpenBLAS's 2;
 * 2 × 2 oversubscribes and halves the speed). Undefined when PyTorch cannot run.
 */
function fastestTorch(
  work: string,
  // biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
  run: (settings: TorchSettings) => any,
  // biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
): { settings: TorchSettings; run: any } | undefined {
  // biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
  let best: { settings: TorchSettings; run: any } | undefined;
  const probed: string[] = [];
  for (const threads of [1, 2])
    for (const blasThreads of [1, 2]) {
      const settings = { threads, blasThreads };
      const result = run(settings);
      if (!result) return undefined;
      probed.push(`${describeTorch(settings)} ${result.tokens_per_second.toFixed(0)}`);
      if (!best || result.tokens_per_second > best.run.tokens_per_second) best = { settings, run: result };
    }
  console.log(
    `PyTorch settings probed for ${work} (tokens/s): ${probed.join(", ")}; the fastest: ${describeTorch(best!.settings)}`,
  );
  return best;
}

function describeTorch(settings: TorchSettings): string {
  return `torch ${settings.threads} × OpenBLAS ${settings.blasThreads ?? "default"}`;
}

/** Runs bench/pytorch_reference.py on the same batches; undefined when Debian's torch is not importable. */
function runPyTorch(
  batches: Int32Array[],
  settings: TorchSettings,
  steps = { warmupSteps, timedSteps },
  shape: Record<string, number> = { ...config, batchSize },
  // biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
): any {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gpt-bench-"));
  const batchesFile = path.join(dir, "batches.bin");
  writeWindows(batchesFile, batches.slice(0, steps.warmupSteps + steps.timedSteps));
  const run = runPyTorchJson({ ...shape, ...steps, threads: settings.threads, batchesFile }, settings);
  fs.rmSync(dir, { recursive: true, force: true });
  return run;
}

/** bench/pytorch_reference.py with these arguments, its JSON line parsed; undefined when it cannot run. */
// biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
function runPyTorchJson(args: Record<string, unknown>, settings: TorchSettings): any {
  const python = torchPython();
  if (!python) return undefined;
  const env = { ...process.env };
  if (settings.blasThreads !== undefined) env.OPENBLAS_NUM_THREADS = String(settings.blasThreads);
  const run = spawnSync(python, [path.join(__dirname, "pytorch_reference.py"), JSON.stringify(args)], {
    encoding: "utf8",
    maxBuffer: 1 << 24,
    env,
  });
  if (run.status !== 0) {
    console.log(`PyTorch reference failed:\n${run.stderr}`);
    return undefined;
  }
  return JSON.parse(run.stdout.trim().split("\n").pop()!);
}

main()
  .then(() => process.exit(0)) // explicit exit: wasm worker threads (if enabled) would keep Node alive
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
