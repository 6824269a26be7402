/**
 * Supervised fine-tuning (SFT): turns a pretrained base model into a chat model.
 *
 *   npm run finetune -- --checkpoint base_dir --out dir [--steps N] [--data dir]
 *
 * Adds the chat template's special tokens to the tokenizer and the model, renders the conversations of
 * data/instructions/train.jsonl (`npm run data:instructions` writes it), and trains with the same Trainer
 * as pretraining, the loss counting assistant tokens only, with the course's fine-tuning recipe
 * (`courseFineTuning`, lib/finetuning/recipe.ts). Ctrl-C saves a checkpoint and stops; `--resume dir`
 * continues exactly (with the same --data and batch options).
 */
import * as path from "node:path";
import { type Conversation, instructionsFile, readConversations } from "course-data";
import {
  addChatTokens,
  ConversationDataset,
  courseFineTuning,
  extendVocabulary,
  formatDuration,
  type GPT,
  loadCheckpoint,
  type RenderedConversation,
  renderConversation,
  resumeTrainer,
  saveCheckpoint,
  type Tokenizer,
  Trainer,
  type TrainerOptions,
} from "gpt-course";
import { fail, integerFlag, numberFlag, parseCommandLine, run, startBackend, trainWithCheckpoints } from "./cli.js";

const usage = `usage: npm run finetune -- --checkpoint DIR --out DIR [options]
  --checkpoint DIR      the pretrained base model to start from
  --out DIR             where to save the chat model (default: checkpoints/chat)
  --resume DIR          continue an interrupted fine-tuning run instead (its options are used)
  --data DIR            folder with train.jsonl (default data/instructions)
  --steps N             optimizer steps (default ${courseFineTuning.trainer.maxSteps})
  --learning-rate LR    peak learning rate (default ${courseFineTuning.trainer.learningRate})
  --batch-size B        rows per batch, each packed with whole conversations (default ${courseFineTuning.data.batchSize})
  --save-every N        save a checkpoint every N steps (default 0: only at the end)`;

run(async () => {
  const flags = parseCommandLine(usage, {
    checkpoint: { type: "string" },
    out: { type: "string" },
    resume: { type: "string" },
    data: { type: "string" },
    steps: { type: "string" },
    "learning-rate": { type: "string" },
    "batch-size": { type: "string" },
    "save-every": { type: "string" },
  });
  if (!flags.checkpoint && !flags.resume)
    fail(`give the base model with --checkpoint (or --resume a fine-tuning run).\n\n${usage}`);
  if (flags.checkpoint && flags.resume) fail("give either --checkpoint (start) or --resume (continue), not both.");
  const out = flags.out ?? flags.resume ?? "checkpoints/chat";
  const saveEvery = integerFlag("save-every", flags["save-every"], 0);
  await startBackend();

  const checkpoint = await loadCheckpoint((flags.checkpoint ?? flags.resume) as string);
  if (!checkpoint.tokenizer) fail("the checkpoint has no tokenizer saved with it, so conversations cannot be encoded.");
  const tokenizer: Tokenizer = checkpoint.tokenizer;
  // A base model has never seen the chat tokens: give them ids, and the model an embedding row for each.
  addChatTokens(tokenizer);
  const model: GPT = extendVocabulary(checkpoint.model, tokenizer.vocabSize);

  let trainerOptions: Partial<TrainerOptions> & { maxSteps: number };
  if (flags.resume) {
    if (!checkpoint.trainerOptions) fail(`${flags.resume} was saved without a trainer, so there is nothing to resume.`);
    trainerOptions = checkpoint.trainerOptions;
  } else {
    const recipe = courseFineTuning.trainer;
    trainerOptions = {
      ...recipe,
      maxSteps: integerFlag("steps", flags.steps, recipe.maxSteps),
      learningRate: numberFlag("learning-rate", flags["learning-rate"], recipe.learningRate),
    };
    trainerOptions.minLearningRate = (trainerOptions.learningRate as number) / 10;
  }

  const conversations = readConversations(
    flags.data ? path.join(flags.data, "train.jsonl") : instructionsFile("train"),
  );
  const { batchSize, validationFraction, seed } = courseFineTuning.data;
  const validationCount = Math.max(1, Math.round(conversations.length * validationFraction));
  const dataset = new ConversationDataset(
    {
      train: renderAll(tokenizer, conversations.slice(0, -validationCount)),
      validation: renderAll(tokenizer, conversations.slice(-validationCount)),
    },
    {
      maxLength: model.config.contextLength + 1,
      batchSize: integerFlag("batch-size", flags["batch-size"], batchSize),
      seed,
    },
  );
  const trainer = new Trainer(model, dataset, trainerOptions);
  if (flags.resume) {
    resumeTrainer(trainer, checkpoint);
    console.error(`resumed ${flags.resume} at step ${trainer.step}`);
  }
  console.error(
    `fine-tuning ${model.numParameters().toLocaleString("en-US")} parameters on ${conversations.length - validationCount} ` +
      `conversations (${validationCount} kept for validation), ${trainer.options.maxSteps} steps of ` +
      `${dataset.options.batchSize} rows of ${model.config.contextLength} tokens packed with whole conversations`,
  );

  const started = performance.now();
  const stepsNow = integerFlag(
    "steps",
    flags.resume ? flags.steps : undefined,
    trainer.options.maxSteps - trainer.step,
  );
  const last = Math.min(trainer.options.maxSteps, trainer.step + stepsNow);
  await trainWithCheckpoints(trainer, last, saveEvery, () => saveCheckpoint(out, { model, tokenizer, trainer }));
  console.error(
    `saved ${out} at step ${trainer.step}; fine-tuning took ${formatDuration((performance.now() - started) / 1000)}`,
  );
});

/** Renders every conversation, naming the one that fails (e.g. a character the tokenizer does not know). */
function renderAll(tokenizer: Tokenizer, conversations: readonly Conversation[]): RenderedConversation[] {
  return conversations.map((conversation) => {
    try {
      return renderConversation(tokenizer, conversation.messages);
    } catch (error) {
      throw new Error(`conversation ${conversation.id}: ${(error as Error).message}`);
    }
  });
}
