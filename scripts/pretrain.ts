/**
 * Pretrains a GPT from scratch and saves checkpoints.
 *
 *   npm run pretrain -- [--config file.json] [--steps N] [--out dir] [--resume dir] [--corpus path]
 *
 * Default: the course's CPU model (4 layers, 4 heads, 128 wide, context 128) with a character tokenizer on
 * the State of the Union addresses. Ctrl-C saves a checkpoint and stops; `--resume` continues exactly.
 */
import * as fs from "node:fs";
import { loadStateOfTheUnion } from "course-data";
import {
  CharTokenizer,
  coursePretraining,
  GPT,
  type GPTConfig,
  loadCheckpoint,
  readTextCorpus,
  resumeTrainer,
  saveCheckpoint,
  TokenDataset,
  type Tokenizer,
  Trainer,
  type TrainerOptions,
} from "gpt-course";
import { fail, integerFlag, parseCommandLine, run, startBackend, trainWithCheckpoints } from "./cli.js";

const usage = `usage: npm run pretrain -- [options]
  --config FILE     JSON with optional "model" (GPT config fields or "preset"), "trainer" (Trainer options)
                    and "data" ({ "batchSize": 16, "validationFraction": 0.1, "seed": 1337 }) sections
  --steps N         optimizer steps to run now (default: the trainer's maxSteps)
  --out DIR         where to save checkpoints (default: checkpoints/pretrain)
  --resume DIR      continue training from a checkpoint (its config is used)
  --corpus PATH     a text file or a folder of .txt files instead of the State of the Union addresses
  --save-every N    save a checkpoint every N steps (default 500)`;

interface RunConfig {
  model?: Partial<GPTConfig> & { preset?: "tiny" | "course" };
  trainer?: Partial<TrainerOptions>;
  data?: { batchSize?: number; validationFraction?: number; seed?: number };
}

run(async () => {
  const flags = parseCommandLine(usage, {
    config: { type: "string" },
    steps: { type: "string" },
    out: { type: "string" },
    resume: { type: "string" },
    corpus: { type: "string" },
    "save-every": { type: "string" },
  });
  const userConfig = flags.config ? readRunConfig(flags.config) : {};
  const out = flags.out ?? flags.resume ?? "checkpoints/pretrain";
  const saveEvery = integerFlag("save-every", flags["save-every"], 500);
  await startBackend();

  const text = flags.corpus ? readTextCorpus(flags.corpus) : loadStateOfTheUnion();
  let model: GPT;
  let tokenizer: Tokenizer;
  let trainerOptions: Partial<TrainerOptions> & { maxSteps: number };
  const checkpoint = flags.resume ? await loadCheckpoint(flags.resume) : undefined;
  if (checkpoint) {
    if (flags.config) fail("--resume uses the checkpoint's own config; leave out --config.");
    if (!checkpoint.tokenizer || !checkpoint.trainerOptions) fail(`${flags.resume} has no tokenizer or trainer state to resume from.`);
    ({ model, tokenizer } = checkpoint as { model: GPT; tokenizer: Tokenizer });
    trainerOptions = checkpoint.trainerOptions;
  } else {
    tokenizer = CharTokenizer.fromText(text);
    const modelConfig = { ...coursePretraining.model, ...userConfig.model, vocabSize: tokenizer.vocabSize };
    model = new GPT(modelConfig);
    trainerOptions = { ...coursePretraining.trainer, ...userConfig.trainer } as TrainerOptions;
  }
  const dataOptions = { ...coursePretraining.data, ...userConfig.data };
  const dataset = new TokenDataset(tokenizer.encode(text), { ...dataOptions, contextLength: model.config.contextLength });
  const trainer = new Trainer(model, dataset, trainerOptions);
  if (checkpoint) {
    resumeTrainer(trainer, checkpoint);
    console.error(`resumed ${flags.resume} at step ${trainer.step}`);
  }
  console.error(
    `model: ${model.numParameters().toLocaleString("en-US")} parameters, ${model.config.numLayers} layers, ` +
      `${model.config.numHeads} heads, ${model.config.embeddingDim} wide, context ${model.config.contextLength}; ` +
      `tokenizer: ${tokenizer.kind} (${tokenizer.vocabSize} tokens); data: ${dataset.train.length.toLocaleString("en-US")} training tokens`,
  );

  const stepsNow = integerFlag("steps", flags.steps, trainer.options.maxSteps - trainer.step);
  const last = Math.min(trainer.options.maxSteps, trainer.step + stepsNow);
  await trainWithCheckpoints(trainer, last, saveEvery, () => saveCheckpoint(out, { model, tokenizer, trainer }));
  console.error(`saved ${out} at step ${trainer.step}`);
});

function readRunConfig(file: string): RunConfig {
  if (!fs.existsSync(file)) fail(`--config: ${file} does not exist.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    fail(`--config: ${file} is not valid JSON (${(error as Error).message}).`);
  }
  const known = ["model", "trainer", "data"];
  const unknown = Object.keys(parsed as object).filter((key) => !known.includes(key));
  if (unknown.length > 0) fail(`--config: unknown section(s) ${unknown.join(", ")} in ${file}; expected ${known.join(", ")}.`);
  return parsed as RunConfig;
}
