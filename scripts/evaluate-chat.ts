/**
 * Exact-match accuracy per task on the held-out conversations, for a chat model and optionally the base
 * model it was fine-tuned from: the before/after table.
 *
 *   npm run evaluate:chat -- --checkpoint chat_dir [--base base_dir] [--test file] [--per-task N] [--tasks a,b]
 */
import { instructionsFile, readConversations } from "course-data";
import {
  accuracyTable,
  addChatTokens,
  evaluateExactMatch,
  type EvaluationExample,
  extendVocabulary,
  formatDuration,
  loadCheckpoint,
  ProgressBar,
  type TaskAccuracy,
} from "gpt-course";
import { fail, integerFlag, parseCommandLine, run, startBackend } from "./cli.js";

const usage = `usage: npm run evaluate:chat -- --checkpoint DIR [options]
  --checkpoint DIR   the fine-tuned chat model
  --base DIR         also evaluate this base model (with the same template: it has never seen it)
  --test FILE        held-out conversations (default data/instructions/test.jsonl)
  --per-task N       evaluate at most N conversations per task (default: all)
  --tasks A,B        only these tasks
  --show N           print N wrong answers per task (default 3)`;

run(async () => {
  const flags = parseCommandLine(usage, {
    checkpoint: { type: "string" },
    base: { type: "string" },
    test: { type: "string" },
    "per-task": { type: "string" },
    tasks: { type: "string" },
    show: { type: "string" },
  });
  if (!flags.checkpoint) fail(`--checkpoint is required.\n\n${usage}`);
  const examples = selectExamples(
    readConversations(flags.test ?? instructionsFile("test")),
    integerFlag("per-task", flags["per-task"], Number.MAX_SAFE_INTEGER),
    flags.tasks?.split(","),
  );
  if (examples.length === 0) fail("no test conversation matches --tasks.");
  const answerCount = examples.reduce(
    (count, { messages }) => count + messages.filter((m) => m.role === "assistant").length,
    0,
  );
  await startBackend();

  const results: Record<string, TaskAccuracy[]> = {};
  const models = flags.base ? { base: flags.base, "fine-tuned": flags.checkpoint } : { "fine-tuned": flags.checkpoint };
  for (const [label, directory] of Object.entries(models)) {
    const { model, tokenizer } = await loadCheckpoint(directory);
    if (!tokenizer) fail(`${directory} has no tokenizer saved with it.`);
    // A base model gets the chat tokens as fresh embedding rows, exactly as fine-tuning starts.
    addChatTokens(tokenizer);
    const chatModel = extendVocabulary(model, tokenizer.vocabSize);
    const started = performance.now();
    const bar = new ProgressBar(answerCount, label);
    const { tasks, answers } = await evaluateExactMatch(chatModel, tokenizer, examples, {
      onAnswer: (_, done) => bar.update(done),
    });
    bar.finish();
    console.error(`${label}: ${answers.length} answers in ${formatDuration((performance.now() - started) / 1000)}`);
    results[`${label} (${directory})`] = tasks;
    const show = integerFlag("show", flags.show, 3);
    for (const task of tasks) {
      for (const wrong of answers.filter((a) => a.task === task.task && !a.correct).slice(0, show)) {
        console.error(
          `  ${label} ✗ [${wrong.task}] ${wrong.question} → ${JSON.stringify(wrong.answer)} (expected ${JSON.stringify(wrong.expected)})`,
        );
      }
    }
  }
  console.log(accuracyTable(results));
});

/** At most `perTask` conversations of each task (in file order), optionally only some tasks. */
function selectExamples(conversations: EvaluationExample[], perTask: number, tasks?: string[]): EvaluationExample[] {
  const counts = new Map<string, number>();
  return conversations.filter(({ task }) => {
    if (tasks && !tasks.includes(task)) return false;
    const count = counts.get(task) ?? 0;
    counts.set(task, count + 1);
    return count < perTask;
  });
}
