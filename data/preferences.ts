import { type ChatMessage, Random } from "gpt-course";
import { CONTINENT_TEMPLATES, countryFacts, fill } from "./instructions.js";
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

/** Five ways to ask for a continent that the fine-tuning data never uses (chapter 07 saw CONTINENT_TEMPLATES). */
export const NEW_CONTINENT_TEMPLATES = [
  "What continent is {country} on?",
  "In which continent is {country}?",
  "{country} lies on which continent?",
  "Name the continent of {country}.",
  "Where is {country}? Name the continent.",
];

/**
 * Practice questions for reinforcement learning: every country's continent, asked in the three phrasings of the
 * fine-tuning data and five new ones. A program grades the answers, so RL questions need not be fine-tuning
 * questions; and a small model sharpens the exact questions it is rewarded on (chapter 10 measures it), so asking
 * each fact in many wordings pushes it to answer from the country rather than from the wording.
 *
 * Nothing held out leaks in: a question whose text occurs anywhere in `test` (as any user message of any
 * conversation) is left out, so each tested country's held-out phrasing stays unseen.
 */
export function continentPracticeQuestions(test: readonly Conversation[]): QuestionWithAnswer[] {
  const asked = new Set(test.flatMap((c) => c.messages.filter((m) => m.role === "user").map((m) => m.content)));
  return countryFacts().flatMap((country) =>
    [...CONTINENT_TEMPLATES, ...NEW_CONTINENT_TEMPLATES].flatMap((template, t) => {
      const question = fill(template, { country: country.name });
      if (asked.has(question)) return [];
      return [
        {
          id: `continent-practice-${country.name}-${t}`,
          task: "continent",
          history: [{ role: "user" as const, content: question }],
          expected: country.continent,
        },
      ];
    }),
  );
}

/**
 * The fine-tuning answers RL replays to keep the tasks its reward does not test (`replayRows`): every training
 * conversation's last question and answer, in a seeded order, so that `npm run align` and chapter 10 replay the same
 * rows and reach the same model.
 */
export function replayQuestions(train: readonly Conversation[], seed = 4242): QuestionWithAnswer[] {
  return new Random(seed).shuffle(lastQuestions(train));
}

/**
 * The questions a reward is earned on, per task: "practice" (continents only: `continentPracticeQuestions`) or
 * how many of the task's fine-tuning questions to draw (a seeded choice; Infinity for all). The course's RL
 * recipe (lib/alignment/recipe.ts) says which.
 */
export function rewardQuestions(
  plan: Readonly<Record<string, "practice" | number>>,
  train: readonly Conversation[],
  test: readonly Conversation[],
  seed = 1337,
): QuestionWithAnswer[] {
  const questions = Object.entries(plan).flatMap(([task, source]) => {
    if (source === "practice") {
      if (task !== "continent")
        throw new Error(`rewardQuestions: there are practice questions for continents only, not "${task}".`);
      return continentPracticeQuestions(test);
    }
    const pool = lastQuestions(train.filter((c) => c.task === task));
    if (pool.length === 0) throw new Error(`rewardQuestions: no training conversations of the task "${task}".`);
    return new Random(seed).shuffle(pool).slice(0, source);
  });
  return new Random(seed + 1).shuffle(questions);
}
