/**
 * Loss parity with PyTorch: does our training reach the validation loss that the same model reaches in
 * PyTorch with the same data, steps and hyper-parameters?
 *
 *   npm run bench:parity                      # the course recipe of `npm run pretrain` (3,000 steps)
 *   npm run bench:parity -- --steps 300       # a shorter run with the same recipe (schedule over 300 steps)
 *
 * Both sides get the course model (4 layers, 4 heads, 128 wide, context 128) with the character tokenizer
 * of the State of the Union addresses, and exactly the same training batches: drawn once here, written to
 * a file for PyTorch and replayed to our Trainer. Both follow lib's recipe: AdamW (betas 0.9/0.99, decay
 * 0.1 on Linear weights), warm-up then cosine decay, clipping at global norm 1. Validation loss is measured
 * on the same fixed validation windows on both sides. Only the random initial weights differ (same
 * distributions, different generators), which is why the two curves are not identical and a tolerance is
 * needed. The two runs go side by side (one thread each), PyTorch in a child process.
 *
 * Prints both curves and the final difference; writes bench/results/parity-<date>-<commit>.json, or for a tree
 * with uncommitted changes bench/results/local/parity-<date>-<commit>-dirty.json (git-ignored).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadStateOfTheUnion } from "course-data";
import {
  type Batch,
  type BatchSource,
  CharTokenizer,
  coursePretraining,
  crossEntropy,
  formatDuration,
  GPT,
  initBackend,
  ProgressBar,
  TokenDataset,
  Trainer,
  tf,
} from "gpt-course";
import { gitCommit, resultsFolder, sampleBatches, toTensors, torchPython, writeWindows } from "./common.js";

const argv = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? Number(argv[i + 1]) : fallback;
};

/** Fixed batches, in order: the Trainer draws exactly the windows PyTorch trains on. */
class ReplayedBatches implements BatchSource {
  private next = 0;
  constructor(
    private readonly windows: readonly Int32Array[],
    private readonly batchSize: number,
    private readonly contextLength: number,
  ) {}

  nextBatch(): Batch {
    const { x, y } = toTensors(this.windows[this.next++], this.batchSize, this.contextLength);
    return { inputs: x, targets: y };
  }

  getState(): number {
    return this.next;
  }

  setState(state: unknown): void {
    this.next = state as number;
  }
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const { model: modelRecipe, trainer: trainerRecipe, data: dataRecipe } = coursePretraining;
  const steps = option("steps", trainerRecipe.maxSteps);
  const evalInterval = option("eval-interval", Math.min(trainerRecipe.evalInterval, steps));
  const validationBatches = option("validation-batches", 50);

  const text = loadStateOfTheUnion();
  const tokenizer = CharTokenizer.fromText(text);
  const config = { ...modelRecipe, vocabSize: tokenizer.vocabSize };
  const model = new GPT(config);
  const { contextLength: T, vocabSize: V } = model.config;
  const B = dataRecipe.batchSize;
  // The split of `npm run pretrain`: the last 10% of the token stream is the validation text.
  const split = new TokenDataset(tokenizer.encode(text), { ...dataRecipe, contextLength: T });
  const trainWindows = sampleBatches(split.train, steps, B, T, dataRecipe.seed);
  const validationWindows = sampleBatches(split.validation, validationBatches, B, T, dataRecipe.seed + 1);

  const python = torchPython();
  // biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
  let pytorch: Promise<any> | undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gpt-parity-"));
  if (python) {
    const batchesFile = path.join(dir, "train.bin");
    const validationFile = path.join(dir, "validation.bin");
    writeWindows(batchesFile, trainWindows);
    writeWindows(validationFile, validationWindows);
    const args = {
      mode: "parity",
      ...config,
      ...model.config,
      batchSize: B,
      threads: 1,
      seed: model.config.seed,
      learningRate: trainerRecipe.learningRate,
      minLearningRate: trainerRecipe.minLearningRate,
      warmupSteps: trainerRecipe.warmupSteps,
      totalSteps: steps,
      gradientClip: 1.0,
      weightDecay: 0.1,
      evalInterval,
      batchesFile,
      validationFile,
    };
    pytorch = runPython(python, [path.join(__dirname, "pytorch_reference.py"), JSON.stringify(args)]);
  }

  console.log(
    `${backend.description}; course model ${model.numParameters().toLocaleString("en-US")} parameters, vocabulary ${V}; ` +
      `${steps} steps of ${B}×${T} tokens; validation on ${validationBatches} fixed batches`,
  );
  const validationLoss = (): number => {
    model.eval();
    let total = 0;
    for (const windows of validationWindows) {
      total += tf.tidy(() => {
        const { x, y } = toTensors(windows, B, T);
        return crossEntropy(model.forward(x), y).dataSync()[0];
      });
    }
    model.train();
    return total / validationWindows.length;
  };
  const trainer = new Trainer(model, new ReplayedBatches(trainWindows, B, T), { ...trainerRecipe, maxSteps: steps });
  const ours = [{ step: 0, validation: validationLoss() }];
  const started = performance.now();
  const bar = new ProgressBar(steps, "ours");
  while (trainer.step < steps) {
    const { loss } = await trainer.trainStep();
    if (trainer.step % evalInterval === 0 || trainer.step === steps)
      ours.push({ step: trainer.step, validation: validationLoss() });
    bar.update(trainer.step, { loss: loss.toFixed(3), val: ours[ours.length - 1].validation.toFixed(3) });
  }
  bar.finish();
  const seconds = (performance.now() - started) / 1000;
  console.log(`ours: ${formatDuration(seconds)}`);

  const reference = pytorch ? await pytorch : undefined;
  fs.rmSync(dir, { recursive: true, force: true });
  const rows = ours.map(({ step, validation }) => {
    const theirs = reference?.evals.find((e: { step: number }) => e.step === step)?.validation;
    return {
      step,
      ours: validation,
      pytorch: theirs,
      difference: theirs === undefined ? undefined : validation - theirs,
    };
  });
  console.log("\n| step | ours | PyTorch | ours − PyTorch |\n|---:|---:|---:|---:|");
  for (const row of rows) {
    console.log(
      `| ${row.step} | ${row.ours.toFixed(4)} | ${row.pytorch?.toFixed(4) ?? "-"} | ${row.difference === undefined ? "-" : (row.difference >= 0 ? "+" : "") + row.difference.toFixed(4)} |`,
    );
  }
  const final = rows[rows.length - 1];
  if (final.difference !== undefined) {
    const verdict = Math.abs(final.difference) <= 0.05 ? "within" : "NOT within";
    console.log(
      `\nfinal validation loss: ours ${final.ours.toFixed(4)}, PyTorch ${final.pytorch!.toFixed(4)}: ${verdict} 0.05 nats`,
    );
  }
  const result = {
    date: new Date().toISOString(),
    commit: gitCommit(),
    backend: backend.description,
    config: model.config,
    trainer: trainer.options,
    batchSize: B,
    validationBatches,
    seconds,
    pytorch: reference && { torch: reference.torch_version, threads: reference.threads, seconds: reference.seconds },
    rows,
  };
  const file = path.join(
    resultsFolder(result.commit).folder, // bench/results/local/ (git-ignored) for an uncommitted tree
    `parity-${result.date.slice(0, 19).replace(/[:T]/g, "-")}-${result.commit}.json`,
  );
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

/** Runs Python in the background; resolves with the JSON it prints last. Its progress goes to our stderr. */
// biome-ignore lint/suspicious/noExplicitAny: the JSON the PyTorch script prints
function runPython(python: string, args: string[]): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(JSON.parse(stdout.trim().split("\n").pop()!))
        : reject(new Error(`PyTorch exited with ${code}`)),
    );
  });
}

main()
  .then(() => process.exit(0)) // explicit exit: wasm worker threads (if enabled) would keep Node alive
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
