/**
 * Preference tuning after fine-tuning (chapter 10): DPO on preference pairs, or reinforcement learning from a
 * reward a program computes (is the answer exactly right?).
 *
 *   npm run align -- --checkpoint checkpoints/07-chat --method rl --out checkpoints/09-rl
 *   npm run align -- --checkpoint checkpoints/07-chat --method dpo --out checkpoints/09-dpo
 *
 * The model starts as the fine-tuned chat model, and a frozen copy of it is the reference that the KL leash (RL)
 * or β (DPO) measures the distance to. Progress bar, Ctrl-C saves and stops, checkpoints like `npm run pretrain`.
 * `--evaluate` grades the held-out test questions before and after (exact match per task).
 */
import { instructionsFile, preferencePairs, readConversations, replayQuestions, rewardQuestions } from "course-data";
import {
  alignmentRecipes,
  dpoObjective,
  evaluateExactMatch,
  exactAnswerReward,
  formatDuration,
  type GPT,
  loadCheckpoint,
  PreferenceDataset,
  policyGradientObjective,
  Random,
  RewardSampler,
  saveCheckpoint,
  type TaskAccuracy,
  type Tokenizer,
  Trainer,
} from "gpt-course";
import { fail, integerFlag, numberFlag, parseCommandLine, run, startBackend, trainWithCheckpoints } from "./cli.js";

const usage = `usage: npm run align -- --checkpoint DIR --method rl|dpo --out DIR [options]
  --checkpoint DIR     the fine-tuned chat model to start from (and the frozen reference)
  --method rl|dpo      reinforcement learning from the exact-answer reward, or DPO on preference pairs
  --out DIR            where to save the tuned model (default checkpoints/aligned-METHOD)
  --steps N            optimizer steps (default: the recipe's, lib/alignment/recipe.ts)
  --learning-rate LR   peak learning rate (default: the recipe's)
  --kl W               RL: weight of the KL leash to the reference (default: the recipe's)
  --beta B             DPO: β, how far the policy may move from the reference (default: the recipe's)
  --chosen-weight W    DPO: weight of the chosen answers' fine-tuning loss added to DPO's (default: the recipe's)
  --tasks a,b          the tasks to train on (default: the recipe's; RL: continents from practice questions,
                       other tasks from their fine-tuning questions)
  --replay N           RL: fine-tuning rows of all tasks replayed per batch (default: the recipe's)
  --replay-weight W    RL: their weight against the reward's rows (default: the recipe's)
  --evaluate           grade the held-out test questions before and after
  --save-every N       save a checkpoint every N steps (default 0: only at the end)`;

run(async () => {
  const flags = parseCommandLine(usage, {
    checkpoint: { type: "string" },
    method: { type: "string" },
    out: { type: "string" },
    steps: { type: "string" },
    "learning-rate": { type: "string" },
    kl: { type: "string" },
    beta: { type: "string" },
    "chosen-weight": { type: "string" },
    tasks: { type: "string" },
    replay: { type: "string" },
    "replay-weight": { type: "string" },
    evaluate: { type: "boolean" },
    "save-every": { type: "string" },
  });
  if (!flags.checkpoint) fail(`give the fine-tuned chat model with --checkpoint.\n\n${usage}`);
  const method = flags.method;
  if (method !== "rl" && method !== "dpo") fail(`--method must be "rl" or "dpo", got ${JSON.stringify(method)}.`);
  const recipe = alignmentRecipes[method];
  const out = flags.out ?? `checkpoints/aligned-${method}`;
  await startBackend();

  const load = async () => {
    const checkpoint = await loadCheckpoint(flags.checkpoint as string);
    checkpoint.disposeTrainerState();
    if (!checkpoint.tokenizer)
      fail(`${flags.checkpoint} has no tokenizer: give a chat model saved by npm run finetune.`);
    return { model: checkpoint.model, tokenizer: checkpoint.tokenizer };
  };
  const { model, tokenizer } = await load();
  const { model: reference } = await load(); // frozen: never trained
  const allTrain = readConversations(instructionsFile("train"));
  const test = readConversations(instructionsFile("test"));
  const rlQuestions = alignmentRecipes.rl.questions;
  const tasks = flags.tasks
    ? flags.tasks.split(",")
    : method === "rl"
      ? Object.keys(rlQuestions)
      : [...alignmentRecipes.dpo.tasks];
  const train = allTrain.filter((c) => tasks.includes(c.task));
  if (train.length === 0) fail(`no training conversations for the tasks ${tasks.join(", ")}.`);

  const before = flags.evaluate ? await grade(model, tokenizer, test, "before") : undefined;
  const steps = integerFlag("steps", flags.steps, recipe.trainer.maxSteps);
  const trainerOptions = {
    ...recipe.trainer,
    maxSteps: steps,
    learningRate: numberFlag("learning-rate", flags["learning-rate"], recipe.trainer.learningRate),
  };
  let trainer: Trainer;
  let sampler: RewardSampler | undefined;
  if (method === "rl") {
    const questions = rewardQuestions(
      Object.fromEntries(tasks.map((task) => [task, rlQuestions[task] ?? Number.POSITIVE_INFINITY])),
      train,
      test,
    );
    console.error(`${questions.length} questions to earn the reward on (${tasks.join(", ")})`);
    const sampling = {
      ...alignmentRecipes.rl.sampling,
      replayRows: integerFlag("replay", flags.replay, alignmentRecipes.rl.sampling.replayRows),
      replayWeight: numberFlag("replay-weight", flags["replay-weight"], alignmentRecipes.rl.sampling.replayWeight),
    };
    const demonstrations = replayQuestions(allTrain);
    sampler = new RewardSampler(questions, demonstrations, tokenizer, model, reference, exactAnswerReward, sampling);
    trainer = new Trainer(
      model,
      sampler,
      trainerOptions,
      policyGradientObjective(numberFlag("kl", flags.kl, alignmentRecipes.rl.klWeight)),
    );
  } else {
    const pairs = new Random(1337).shuffle(preferencePairs(train, tasks));
    console.error(`${pairs.length} preference pairs (${tasks.join(", ")})`);
    const data = new PreferenceDataset(pairs, tokenizer, reference, alignmentRecipes.dpo.data);
    trainer = new Trainer(
      model,
      data,
      trainerOptions,
      dpoObjective(
        numberFlag("beta", flags.beta, alignmentRecipes.dpo.beta),
        numberFlag("chosen-weight", flags["chosen-weight"], alignmentRecipes.dpo.chosenWeight),
      ),
    );
  }
  const started = performance.now();
  await trainWithCheckpoints(trainer, steps, integerFlag("save-every", flags["save-every"], 0), () =>
    saveCheckpoint(out, { model, tokenizer }),
  );
  console.error(
    `trained ${trainer.step} steps in ${formatDuration((performance.now() - started) / 1000)}; saved ${out}`,
  );
  if (sampler) {
    // the reward per task on the training questions sampled, in the first and the last quarter of the run
    const history = sampler.history;
    const quarter = Math.max(1, Math.floor(history.length / 4));
    const rewardOf = (batches: typeof history, task: string) => {
      const entries = batches.map((h) => h.byTask[task]).filter((e) => e !== undefined);
      const answers = entries.reduce((n, e) => n + e.answers, 0);
      return answers ? entries.reduce((s, e) => s + e.reward * e.answers, 0) / answers : Number.NaN;
    };
    console.error("mean reward on the training questions sampled (first quarter of the run → last quarter):");
    for (const task of tasks) {
      const [first, last] = [history.slice(0, quarter), history.slice(-quarter)].map((b) => rewardOf(b, task));
      console.error(`  ${task.padEnd(15)} ${first.toFixed(2)} → ${last.toFixed(2)}`);
    }
  }
  if (before) {
    const after = await grade(model, tokenizer, test, "after");
    console.log("task            before   after");
    for (const row of after) {
      const was = before.find((b) => b.task === row.task)!;
      console.log(
        `${row.task.padEnd(15)} ${(100 * was.accuracy).toFixed(1).padStart(6)}% ${(100 * row.accuracy).toFixed(1).padStart(6)}%`,
      );
    }
  }
  reference.dispose();
});

async function grade(
  model: GPT,
  tokenizer: Tokenizer,
  test: ReturnType<typeof readConversations>,
  label: string,
): Promise<TaskAccuracy[]> {
  const started = performance.now();
  const { tasks } = await evaluateExactMatch(model, tokenizer, test);
  console.error(
    `${label}: graded ${test.length} test conversations in ${formatDuration((performance.now() - started) / 1000)}`,
  );
  return tasks;
}
