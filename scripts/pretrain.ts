/**
 * Pretrains a GPT from scratch and saves checkpoints.
 *
 *   npm run pretrain -- [--recipe chat-base] [--config file.json] [--steps N] [--out dir] [--resume dir] [--corpus path]
 *
 * Default: the course's recipe (notebook 05): the course model (4 layers, 4 heads, 128 wide, context 128) with
 * a character tokenizer on the State of the Union addresses. `--recipe chat-base` trains notebook 07's base
 * model for chat instead: a BPE tokenizer with single digits, trained on the corpus and the chat data. A
 * config's "tokenizer" section can ask for byte-pair encoding too.
 * Ctrl-C saves a checkpoint and stops; `--resume` continues exactly.
 */
import * as fs from "node:fs";
import { instructionsFile, loadStateOfTheUnion, readConversations } from "course-data";
import {
  trainBPEFast,
  CharTokenizer,
  chatBasePretraining,
  DIGITS_PATTERN,
  formatDuration,
  GPT2_PATTERN,
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
  --recipe NAME     "course" (the default: notebook 05's character model) or "chat-base" (notebook 07's base
                    model for chat: BPE with single digits, trained on the speeches and the chat data)
  --config FILE     JSON with optional "model" (GPT config fields or "preset"), "trainer" (Trainer options),
                    "data" ({ "batchSize": 16, "validationFraction": 0.1, "seed": 1337 }) and "tokenizer"
                    ({ "kind": "char" }, the default, or { "kind": "bpe", "vocabSize": 1536, "splitDigits": true,
                    "alsoTrainOn": ["data/instructions/train.jsonl"] }) sections
  --steps N         optimizer steps to run now (default: the trainer's maxSteps)
  --out DIR         where to save checkpoints (default: checkpoints/pretrain)
  --resume DIR      continue training from a checkpoint (its config is used)
  --corpus PATH     a text file or a folder of .txt files instead of the State of the Union addresses
  --save-every N    save a checkpoint every N steps (default 500)`;

/** Which tokenizer to build for a new model: characters, or BPE trained on the corpus (plus extra files). */
type TokenizerSpec =
  | { kind: "char" }
  | {
      kind: "bpe";
      vocabSize: number; // 256 byte tokens + merges
      splitDigits?: boolean; // every digit its own token (DIGITS_PATTERN), as arithmetic needs
      alsoTrainOn?: string[]; // text files, or .jsonl conversations, the tokenizer should also encode compactly
    };

interface RunConfig {
  tokenizer?: TokenizerSpec;
  model?: Partial<GPTConfig> & { preset?: "tiny" | "course" };
  trainer?: Partial<TrainerOptions>;
  data?: { batchSize?: number; validationFraction?: number; seed?: number };
}

run(async () => {
  const flags = parseCommandLine(usage, {
    recipe: { type: "string" },
    config: { type: "string" },
    steps: { type: "string" },
    out: { type: "string" },
    resume: { type: "string" },
    corpus: { type: "string" },
    "save-every": { type: "string" },
  });
  const recipe = recipeConfig(flags.recipe ?? "course");
  const userConfig: RunConfig = { ...recipe, ...(flags.config ? readRunConfig(flags.config) : {}) };
  const out = flags.out ?? flags.resume ?? "checkpoints/pretrain";
  const saveEvery = integerFlag("save-every", flags["save-every"], 500);
  await startBackend();

  const text = flags.corpus ? readTextCorpus(flags.corpus) : loadStateOfTheUnion();
  let model: GPT;
  let tokenizer: Tokenizer;
  let trainerOptions: Partial<TrainerOptions> & { maxSteps: number };
  const checkpoint = flags.resume ? await loadCheckpoint(flags.resume) : undefined;
  if (checkpoint) {
    if (flags.config || flags.recipe)
      fail("--resume uses the checkpoint's own config; leave out --config and --recipe.");
    if (!checkpoint.tokenizer || !checkpoint.trainerOptions)
      fail(`${flags.resume} has no tokenizer or trainer state to resume from.`);
    ({ model, tokenizer } = checkpoint as { model: GPT; tokenizer: Tokenizer });
    trainerOptions = checkpoint.trainerOptions;
  } else {
    tokenizer = buildTokenizer(userConfig.tokenizer ?? { kind: "char" }, text);
    const modelConfig = { ...coursePretraining.model, ...userConfig.model, vocabSize: tokenizer.vocabSize };
    model = new GPT(modelConfig);
    trainerOptions = { ...coursePretraining.trainer, ...userConfig.trainer } as TrainerOptions;
  }
  const dataOptions = { ...coursePretraining.data, ...userConfig.data };
  const dataset = new TokenDataset(tokenizer.encode(text), {
    ...dataOptions,
    contextLength: model.config.contextLength,
  });
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

/** The named recipes, as config sections (a --config file's sections replace them). */
function recipeConfig(name: string): RunConfig {
  if (name === "course") return {};
  if (name === "chat-base") {
    const { tokenizer, ...rest } = chatBasePretraining;
    return {
      ...rest,
      tokenizer: {
        kind: "bpe",
        vocabSize: tokenizer.vocabSize,
        splitDigits: true,
        alsoTrainOn: [instructionsFile("train")],
      },
    };
  }
  fail(`--recipe must be "course" or "chat-base", got "${name}".`);
}

function readRunConfig(file: string): RunConfig {
  if (!fs.existsSync(file)) fail(`--config: ${file} does not exist.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    fail(`--config: ${file} is not valid JSON (${(error as Error).message}).`);
  }
  const known = ["tokenizer", "model", "trainer", "data"];
  const unknown = Object.keys(parsed as object).filter((key) => !known.includes(key));
  if (unknown.length > 0)
    fail(`--config: unknown section(s) ${unknown.join(", ")} in ${file}; expected ${known.join(", ")}.`);
  return parsed as RunConfig;
}

function buildTokenizer(spec: TokenizerSpec, corpus: string): Tokenizer {
  if (spec.kind === "char") return CharTokenizer.fromText(corpus);
  if (spec.kind !== "bpe")
    fail(`--config: tokenizer kind must be "char" or "bpe", got ${JSON.stringify((spec as { kind: unknown }).kind)}.`);
  if (!Number.isInteger(spec.vocabSize) || spec.vocabSize <= 256) {
    fail(
      `--config: a BPE tokenizer's vocabSize must be an integer above 256 (the byte tokens), got ${JSON.stringify(spec.vocabSize)}.`,
    );
  }
  const extra = (spec.alsoTrainOn ?? []).map((file) => {
    if (!fs.existsSync(file)) fail(`--config: tokenizer.alsoTrainOn: ${file} does not exist.`);
    if (!file.endsWith(".jsonl")) return readTextCorpus(file);
    return readConversations(file)
      .flatMap((conversation) => conversation.messages.map((message) => message.content))
      .join("\n");
  });
  const started = performance.now();
  const tokenizer = trainBPEFast([corpus, ...extra].join("\n"), spec.vocabSize, {
    pattern: spec.splitDigits ? DIGITS_PATTERN : GPT2_PATTERN,
  });
  console.error(
    `trained a BPE tokenizer of ${tokenizer.vocabSize} tokens in ${formatDuration((performance.now() - started) / 1000)}`,
  );
  return tokenizer;
}
