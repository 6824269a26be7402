import type { GPT } from "../models/gpt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { chat } from "./chat.js";
import type { ChatMessage } from "./chat-template.js";

/** A conversation with known answers, labelled with the task it tests (e.g. "addition", "capital"). */
export interface EvaluationExample {
  task: string;
  messages: readonly ChatMessage[];
}

/** One graded assistant turn. */
export interface GradedAnswer {
  task: string;
  question: string; // the user message just before the answer
  expected: string;
  answer: string;
  correct: boolean;
}

export interface TaskAccuracy {
  task: string;
  correct: number;
  total: number;
  accuracy: number; // correct / total, in [0, 1]
}

export interface EvaluationResult {
  tasks: TaskAccuracy[]; // one row per task, in order of first appearance
  answers: GradedAnswer[];
}

export interface EvaluationOptions {
  /** Called after each graded answer, e.g. to draw a progress bar. */
  onAnswer?: (answer: GradedAnswer, done: number, total: number) => void;
}

/**
 * Exact-match accuracy per task: for every assistant message of every example, the model replies to the
 * conversation up to that point (with the expected earlier answers, not its own, so one mistake is counted
 * once) and is right only if its reply, trimmed of surrounding spaces, equals the expected text.
 *
 * Decoding is greedy (temperature 0), so the score is a property of the model, not of a lucky draw.
 * A reply longer than the expected one is wrong whatever follows, so generation stops one token past the
 * expected length: the score is the same, and it is much faster.
 */
export async function evaluateExactMatch(
  model: GPT,
  tokenizer: Tokenizer,
  examples: readonly EvaluationExample[],
  options: EvaluationOptions = {},
): Promise<EvaluationResult> {
  const turns = examples.flatMap((example) =>
    example.messages.flatMap((message, i) =>
      message.role === "assistant"
        ? [{ task: example.task, history: example.messages.slice(0, i), expected: message.content }]
        : [],
    ),
  );
  const answers: GradedAnswer[] = [];
  for (const { task, history, expected } of turns) {
    const reply = await chat(model, tokenizer, history, {
      temperature: 0,
      maxNewTokens: tokenizer.encode(expected).length + 1,
    });
    const answer = reply.text.trim();
    const graded: GradedAnswer = {
      task,
      question: history.at(-1)?.content ?? "",
      expected,
      answer,
      correct: answer === expected.trim() && reply.finishReason === "stop",
    };
    answers.push(graded);
    options.onAnswer?.(graded, answers.length, turns.length);
  }
  return { tasks: accuracyPerTask(answers), answers };
}

function accuracyPerTask(answers: readonly GradedAnswer[]): TaskAccuracy[] {
  const byTask = new Map<string, { correct: number; total: number }>();
  for (const { task, correct } of answers) {
    const counts = byTask.get(task) ?? { correct: 0, total: 0 };
    counts.total++;
    if (correct) counts.correct++;
    byTask.set(task, counts);
  }
  return [...byTask].map(([task, { correct, total }]) => ({ task, correct, total, accuracy: correct / total }));
}

/** The accuracies as a Markdown table, with one column per model: e.g. { base: ..., "fine-tuned": ... }. */
export function accuracyTable(results: Record<string, readonly TaskAccuracy[]>): string {
  const columns = Object.keys(results);
  const tasks = [...new Set(Object.values(results).flatMap((rows) => rows.map((row) => row.task)))];
  const cell = (rows: readonly TaskAccuracy[], task: string) => {
    const row = rows.find((r) => r.task === task);
    return row ? `${(100 * row.accuracy).toFixed(1)}% (${row.correct}/${row.total})` : "-";
  };
  const lines = [`| task | ${columns.join(" | ")} |`, `|---|${columns.map(() => "---|").join("")}`];
  for (const task of tasks)
    lines.push(`| ${task} | ${columns.map((column) => cell(results[column], task)).join(" | ")} |`);
  return lines.join("\n");
}
