import { type TContinentCode, continents, countries } from "countries-list";
import { currencies } from "countries-list/currencies";
import { type ChatMessage, Random } from "gpt-course";
import type { Conversation } from "./instructions-jsonl.js";
import { loadStateOfTheUnion, toPlainAscii } from "./sotu.js";

/**
 * Instruction data for fine-tuning a base model into a chat model: conversations generated from fact
 * tables and small computations, deterministically from a seed.
 *
 * No chat data set ships offline, and a tiny model on a CPU can only learn tasks that are small and
 * exact. So every task here has one right answer that a few minutes of training can teach:
 *
 *   addition, subtraction   "What is 47 + 38?" → "47 + 38 is 85"            (two-digit numbers)
 *   capital                 "What is the capital of France?" → "Paris"      (npm countries-list)
 *   continent, currency     "Which continent is Peru in?" → "South America"
 *   uppercase, reverse      "Spell motion backwards." → "noitom"            (words from the SOTU corpus)
 *   count                   "Count from 3 to 7." → "3, 4, 5, 6, 7"
 *   followup                a capital question, then "Which continent is it in?" (needs the history)
 *   two-questions           two unrelated questions in one conversation
 *
 * Held-out test split: every test question is one the model never saw in training, but one it can answer.
 * What is held out differs by task, and that is the honest part:
 *   - arithmetic, words, counting: held-out *inputs*. 10% of the number pairs (47 + 38 and 38 + 47
 *     together), 20% of the words and 25% of the counting ranges never occur in training. Answering them
 *     needs the procedure, not a memorised answer.
 *   - facts (capital, continent, currency): held-out *phrasings*. A model cannot know the capital of a
 *     country it never heard of, so every country is in training, but each country's questions in training
 *     use all phrasings but one, and the test asks with that one (a different one for different countries,
 *     so every phrasing is also seen in training). The test measures whether the model learned the fact
 *     rather than the string "What is the capital of Chad?" → "N'Djamena".
 *   - followup and two-questions open with a held-out question.
 * `generateInstructions` checks that no test conversation's opening question occurs anywhere in training.
 *
 * Text is plain ASCII and uses only characters that occur in the State of the Union corpus (no "=", "<",
 * "|"...), so the course's character tokenizer, built from that corpus, can encode every conversation.
 */
export const TASKS = [
  "addition",
  "subtraction",
  "capital",
  "continent",
  "currency",
  "uppercase",
  "reverse",
  "count",
  "followup",
  "two-questions",
] as const;
export type TaskName = (typeof TASKS)[number];

export interface InstructionOptions {
  seed: number;
  /** Training conversations per task: the mix decides what a short fine-tuning run spends its time on. */
  trainPerTask: Record<TaskName, number>;
  /** Test conversations per task (fewer when a task has fewer held-out questions). */
  testPerTask: Record<TaskName, number>;
  /** Fraction of conversations that open with a system message. */
  systemFraction: number;
}

/**
 * The course's mix: mostly addition and capitals (the two tasks the course measures itself on), enough of
 * the others to learn them too.
 */
export const defaultInstructionOptions: InstructionOptions = {
  seed: 1337,
  trainPerTask: {
    addition: 6000,
    subtraction: 1000,
    capital: 5000,
    continent: 1000,
    currency: 600,
    uppercase: 800,
    reverse: 800,
    count: 800,
    followup: 800,
    "two-questions": 800,
  },
  testPerTask: {
    addition: 200,
    subtraction: 100,
    capital: 200,
    continent: 100,
    currency: 100,
    uppercase: 100,
    reverse: 100,
    count: 100,
    followup: 100,
    "two-questions": 100,
  },
  systemFraction: 0.1,
};

export const SYSTEM_PROMPTS = [
  "You are a helpful assistant.",
  "Answer briefly.",
  "You are a helpful assistant. Answer in a few words.",
];

/** One task: a generator of training conversations and the full list of held-out ones. */
interface Task {
  train(): ChatMessage[];
  test: ChatMessage[][];
}

/** The training conversations (in a seeded shuffled order) and the test conversations (by task). */
export function generateInstructions(options: Partial<InstructionOptions> = {}): {
  train: Conversation[];
  test: Conversation[];
} {
  const { seed, trainPerTask, testPerTask, systemFraction } = {
    ...defaultInstructionOptions,
    ...options,
    trainPerTask: { ...defaultInstructionOptions.trainPerTask, ...options.trainPerTask },
    testPerTask: { ...defaultInstructionOptions.testPerTask, ...options.testPerTask },
  };
  const random = new Random(seed);
  const tasks = buildTasks(random);
  const withSystem = (messages: ChatMessage[]): ChatMessage[] => {
    const system: ChatMessage = { role: "system", content: pick(random, SYSTEM_PROMPTS) };
    const add = random.next() < systemFraction && renderedLength([system, ...messages]) <= MAX_LENGTH;
    return add ? [system, ...messages] : messages;
  };

  // The test set first, so that it depends only on the seed and testPerTask, not on the training mix.
  const test: Conversation[] = [];
  for (const name of TASKS) {
    const fitting = tasks[name].test.filter((messages) => renderedLength(messages) <= MAX_LENGTH);
    const heldOut = random.shuffle(fitting).slice(0, testPerTask[name]);
    heldOut.forEach((messages, i) => test.push({ id: `${name}-${i}`, task: name, messages: withSystem(messages) }));
  }
  const train: Conversation[] = [];
  for (const name of TASKS) {
    for (let i = 0; i < trainPerTask[name]; i++)
      train.push({ id: `${name}-${i}`, task: name, messages: withSystem(fittingTrain(tasks[name])) });
  }
  checkHeldOut(train, test);
  return { train: random.shuffle(train), test };
}

/** Throws if a test conversation's opening question occurs anywhere in training: the split would be leaky. */
export function checkHeldOut(train: readonly Conversation[], test: readonly Conversation[]): void {
  const trainQuestions = new Set(
    train.flatMap((c) => c.messages.filter((m) => m.role === "user").map((m) => m.content)),
  );
  for (const conversation of test) {
    const opening = conversation.messages.find((m) => m.role === "user")?.content ?? "";
    if (trainQuestions.has(opening)) {
      throw new Error(
        `Held-out split is leaky: test conversation ${conversation.id} opens with "${opening}", which occurs in training.`,
      );
    }
  }
}

function buildTasks(random: Random): Record<TaskName, Task> {
  const facts = countryFacts();
  const capitalPhrasings = heldOutPhrasings(random, facts, CAPITAL_TEMPLATES.length);
  const words = splitItems(random, commonWords(600), 0.2);
  const single = {
    addition: numberPairTask(
      random,
      additionPairs(),
      0.1,
      ["What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}."],
      "+",
    ),
    subtraction: numberPairTask(
      random,
      subtractionPairs(),
      0.1,
      ["What is {a} - {b}?", "What is {a} minus {b}?", "Subtract {b} from {a}."],
      "-",
    ),
    capital: factTask(random, facts, CAPITAL_TEMPLATES, (country) => country.capital, capitalPhrasings),
    continent: factTask(random, facts, CONTINENT_TEMPLATES, (c) => c.continent),
    currency: factTask(
      random,
      facts.filter((c) => c.currency !== undefined),
      [
        "What currency does {country} use?",
        "What is the currency of {country}?",
        "Which currency is used in {country}?",
      ],
      (c) => c.currency as string,
    ),
    uppercase: wordTask(
      random,
      words,
      ["Write {word} in capital letters.", "Uppercase the word {word}.", "What is {word} in uppercase?"],
      (word) => word.toUpperCase(),
    ),
    reverse: wordTask(
      random,
      words,
      ["Reverse the word {word}.", "Spell {word} backwards.", "Write {word} backwards."],
      (word) => [...word].reverse().join(""),
    ),
    count: countTask(random),
  };
  return {
    ...single,
    followup: followupTask(random, facts, capitalPhrasings),
    "two-questions": twoQuestionsTask(random, Object.values(single)),
  };
}

// ---------------------------------------------------------------- arithmetic

/** Unordered pairs a ≤ b of two-digit numbers: 47 + 38 and 38 + 47 are held out (or not) together. */
function additionPairs(): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (let a = 10; a <= 99; a++) for (let b = a; b <= 99; b++) pairs.push([a, b]);
  return pairs;
}

/** Pairs a ≥ b of two-digit numbers, so that a − b is never negative. */
function subtractionPairs(): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (let a = 10; a <= 99; a++) for (let b = 10; b <= a; b++) pairs.push([a, b]);
  return pairs;
}

/**
 * The answer restates the sum before solving it: "What is 47 + 38?" → "47 + 38 is 85". Writing the
 * operands first is what makes arithmetic learnable in minutes. To answer "85" at once, the model must
 * find the four digits wherever the question's wording put them; once it has written "47 + 38 is ", every
 * digit it needs sits at a fixed distance behind the one it writes next (the tens 11 and 6 places back,
 * the units 10 and 5), and adding digits it can always find is a small lookup table. Measured with the
 * course model's shape trained on additions alone (data/README.md): 24% of held-out sums right after 1,500
 * steps when answering "85", 90% after 1,000 steps when answering "47 + 38 is 85".
 */
function numberPairTask(
  random: Random,
  pairs: Array<[number, number]>,
  testFraction: number,
  templates: string[],
  operator: "+" | "-",
): Task {
  const split = splitItems(random, pairs, testFraction);
  const conversation = (pair: [number, number]): ChatMessage[] => {
    const [a, b] = operator === "+" && random.next() < 0.5 ? [pair[1], pair[0]] : pair; // a + b = b + a: both orders
    const result = operator === "+" ? a + b : a - b;
    return exchange(fill(pick(random, templates), { a, b }), `${a} ${operator} ${b} is ${result}`);
  };
  return { train: () => conversation(pick(random, split.train)), test: split.test.map(conversation) };
}

// ---------------------------------------------------------------- facts about countries

export interface CountryFacts {
  name: string;
  capital: string;
  continent: string;
  currency?: string;
}

const CAPITAL_TEMPLATES = [
  "What is the capital of {country}?",
  "What's the capital city of {country}?",
  "Name the capital of {country}.",
  "Which city is the capital of {country}?",
  "Tell me the capital of {country}.",
];

export const CONTINENT_TEMPLATES = [
  "Which continent is {country} in?",
  "On which continent is {country}?",
  "{country} is on which continent?",
];

/** Countries with a capital (territories that are part of another country left out), in ASCII, by name. */
export function countryFacts(): CountryFacts[] {
  return Object.values(countries)
    .filter((country) => country.capital !== "" && country.partOf === undefined && !country.userAssigned)
    .map((country) => {
      const currency = currencies[country.currency[0]]?.name;
      return {
        name: toPlainAscii(country.name),
        capital: toPlainAscii(country.capital),
        continent: continents[country.continent as TContinentCode],
        ...(currency ? { currency: toPlainAscii(currency) } : {}),
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * The held-out phrasing of each country's question: template i % templates for the i-th country of a
 * seeded shuffle, so the held-out phrasing rotates and every phrasing is trained on for most countries.
 */
function heldOutPhrasings(random: Random, facts: CountryFacts[], templates: number): Map<CountryFacts, number> {
  return new Map(random.shuffle([...facts]).map((country, i) => [country, i % templates]));
}

/** Any phrasing but the held-out one. */
function trainingPhrasing(random: Random, heldOut: number, templates: number): number {
  return (heldOut + 1 + random.int(templates - 1)) % templates;
}

/** A fact question for every country: the test asks each country with its held-out phrasing. */
function factTask(
  random: Random,
  facts: CountryFacts[],
  templates: string[],
  answer: (country: CountryFacts) => string,
  heldOut = heldOutPhrasings(random, facts, templates.length),
): Task {
  const ask = (country: CountryFacts, template: number): ChatMessage[] =>
    exchange(fill(templates[template], { country: country.name }), answer(country));
  return {
    train: () => {
      const country = pick(random, facts);
      return ask(country, trainingPhrasing(random, heldOut.get(country) as number, templates.length));
    },
    test: facts.map((country) => ask(country, heldOut.get(country) as number)),
  };
}

/**
 * A capital question, then a follow-up about "it" → the continent: the answer needs the first turn. It
 * shares the capital task's held-out phrasings, so its test opens with a held-out capital question.
 */
function followupTask(random: Random, facts: CountryFacts[], capitalPhrasings: Map<CountryFacts, number>): Task {
  const followups = ["Which continent is it in?", "And which continent is it on?"];
  const ask = (country: CountryFacts, template: number): ChatMessage[] => [
    ...exchange(fill(CAPITAL_TEMPLATES[template], { country: country.name }), country.capital),
    ...exchange(pick(random, followups), country.continent),
  ];
  return {
    train: () => {
      const country = pick(random, facts);
      return ask(country, trainingPhrasing(random, capitalPhrasings.get(country) as number, CAPITAL_TEMPLATES.length));
    },
    test: facts.map((country) => ask(country, capitalPhrasings.get(country) as number)),
  };
}

// ---------------------------------------------------------------- words and counting

/**
 * The `count` most frequent lowercase words of 4 to 8 letters in the State of the Union addresses: words
 * the base model has read many times, so spelling them differently is the only new thing to learn.
 */
function commonWords(count: number): string[] {
  if (wordsByFrequency === undefined) {
    const frequency = new Map<string, number>();
    for (const [word] of loadStateOfTheUnion().matchAll(/\b[a-z]{4,8}\b/g))
      frequency.set(word, (frequency.get(word) ?? 0) + 1);
    wordsByFrequency = [...frequency].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([word]) => word);
  }
  return wordsByFrequency.slice(0, count);
}

/** Reading the corpus takes a second or two: it is counted once per process. */
let wordsByFrequency: string[] | undefined;

function wordTask(
  random: Random,
  words: { train: string[]; test: string[] },
  templates: string[],
  answer: (word: string) => string,
): Task {
  const ask = (word: string) => exchange(fill(pick(random, templates), { word }), answer(word));
  return { train: () => ask(pick(random, words.train)), test: words.test.map(ask) };
}

/** "Count from 3 to 7." → "3, 4, 5, 6, 7": ranges of 3 to 6 numbers starting at 1 to 96. */
function countTask(random: Random): Task {
  const ranges: Array<[number, number]> = [];
  for (let start = 1; start <= 96; start++)
    for (let length = 3; length <= 6; length++) ranges.push([start, start + length - 1]);
  const split = splitItems(random, ranges, 0.25);
  const templates = ["Count from {a} to {b}.", "List the numbers from {a} to {b}."];
  const ask = ([a, b]: [number, number]) =>
    exchange(fill(pick(random, templates), { a, b }), Array.from({ length: b - a + 1 }, (_, i) => a + i).join(", "));
  return { train: () => ask(pick(random, split.train)), test: split.test.map(ask) };
}

/** Two questions of two different tasks in one conversation: the model must answer the latest one. */
function twoQuestionsTask(random: Random, tasks: Task[]): Task {
  const pairUp = (make: (task: Task) => ChatMessage[]): ChatMessage[] => {
    const first = random.int(tasks.length);
    const second = (first + 1 + random.int(tasks.length - 1)) % tasks.length; // a task different from the first
    return [...make(tasks[first]), ...make(tasks[second])];
  };
  return {
    train: () => pairUp((task) => task.train()),
    test: Array.from({ length: 500 }, () => pairUp((task) => pick(random, task.test))),
  };
}

// ---------------------------------------------------------------- helpers

/**
 * Longest conversation, in tokens of the course's character tokenizer: the course model reads 128 tokens.
 * Longer ones (a long country name in a two-turn conversation) are left out of the test and drawn again
 * for training.
 */
const MAX_LENGTH = 128;

/** A training conversation of `task` short enough for the context (drawn again until it is). */
function fittingTrain(task: Task): ChatMessage[] {
  for (;;) {
    const messages = task.train();
    if (renderedLength(messages) <= MAX_LENGTH) return messages;
  }
}

/** Tokens of the rendered conversation with a character tokenizer: every character, plus <|role|> and <|end|> per message. */
function renderedLength(messages: readonly ChatMessage[]): number {
  return messages.reduce((length, message) => length + message.content.length + 2, 0);
}

function exchange(question: string, answer: string): ChatMessage[] {
  return [
    { role: "user", content: question },
    { role: "assistant", content: answer },
  ];
}

/** Replaces each {name} in the template by its value. */
export function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => String(values[name]));
}

function pick<T>(random: Random, items: readonly T[]): T {
  return items[random.int(items.length)];
}

/** A seeded split: `testFraction` of the items (at least one) held out for the test. */
function splitItems<T>(random: Random, items: readonly T[], testFraction: number): { train: T[]; test: T[] } {
  const shuffled = random.shuffle([...items]);
  const testCount = Math.max(1, Math.round(items.length * testFraction));
  return { train: shuffled.slice(testCount), test: shuffled.slice(0, testCount) };
}
