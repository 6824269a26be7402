import type { ChatMessage } from "gpt-course";
import type { Conversation } from "./instructions-jsonl.js";

/**
 * Data for preference tuning (chapter 10), made from the instruction data like the instructions themselves:
 * deterministic, and with one right answer per question, so that a program can grade any answer.
 */

/** A question with its expected answer: the conversation up to the user's last message. */
export interface QuestionWithAnswer {
  id: string;
  task: string;
  history: ChatMessage[];
  expected: string;
}

/** Each conversation's last question and the answer it expects (earlier turns stay in the history). */
export function lastQuestions(conversations: readonly Conversation[]): QuestionWithAnswer[] {
  return conversations.map((conversation) => {
    const messages = conversation.messages;
    const last = messages[messages.length - 1];
    if (last.role !== "assistant")
      throw new Error(`lastQuestions: conversation ${conversation.id} does not end with an answer.`);
    return { id: conversation.id, task: conversation.task, history: messages.slice(0, -1), expected: last.content };
  });
}

/**
 * A plausible wrong answer of the kind the fine-tuned model gives (chapter 07 shows them): the sum with one digit
 * off, a list that stops one number early, another continent, capital or currency from the same data. Undefined
 * for tasks where a rule would not make a telling mistake (uppercase, reverse) and for multi-turn conversations.
 */
export function rejectedAnswer(
  question: QuestionWithAnswer,
  others: readonly QuestionWithAnswer[],
  pick: number,
): string | undefined {
  const { task, expected } = question;
  const arithmetic = /^(\d+) ([+-]) (\d+) is (-?\d+)$/.exec(expected);
  if (arithmetic) {
    const result = Number(arithmetic[4]);
    const wrong = result + [1, -1, 10, -10][pick % 4];
    return `${arithmetic[1]} ${arithmetic[2]} ${arithmetic[3]} is ${wrong === result ? result + 2 : wrong}`;
  }
  if (task === "count") {
    const numbers = expected.split(", ");
    return numbers.length > 1 ? numbers.slice(0, -1).join(", ") : undefined;
  }
  if (task === "capital" || task === "continent" || task === "currency") {
    const candidates = [
      ...new Set(others.filter((o) => o.task === task && o.expected !== expected).map((o) => o.expected)),
    ].sort();
    return candidates.length > 0 ? candidates[pick % candidates.length] : undefined;
  }
  return undefined;
}

/** Preference pairs (chosen: the expected answer; rejected: `rejectedAnswer`) for the tasks given, deterministic. */
export function preferencePairs(
  conversations: readonly Conversation[],
  tasks: readonly string[],
): Array<{ task: string; history: ChatMessage[]; chosen: string; rejected: string }> {
  const questions = lastQuestions(conversations.filter((c) => tasks.includes(c.task) && c.messages.length <= 3));
  return questions.flatMap((question, i) => {
    const rejected = rejectedAnswer(question, questions, i * 7919);
    return rejected === undefined
      ? []
      : [{ task: question.task, history: question.history, chosen: question.expected, rejected }];
  });
}
