import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  type Conversation,
  conversationsToJsonl,
  generateInstructions,
  loadStateOfTheUnion,
  parseConversations,
  TASKS,
} from "course-data";
import { addChatTokens, CharTokenizer, renderConversation } from "gpt-course";
import { beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
let data: { train: Conversation[]; test: Conversation[] };

beforeAll(() => {
  data = generateInstructions();
});

const userQuestions = (conversations: Conversation[]) =>
  new Set(conversations.flatMap((c) => c.messages.filter((m) => m.role === "user").map((m) => m.content)));

describe("instruction data generator", () => {
  it("is deterministic: same seed, same data; another seed, other data", () => {
    const again = generateInstructions();
    expect(conversationsToJsonl(again.train)).toBe(conversationsToJsonl(data.train));
    expect(conversationsToJsonl(again.test)).toBe(conversationsToJsonl(data.test));
    const other = generateInstructions({ seed: 7 });
    expect(conversationsToJsonl(other.train)).not.toBe(conversationsToJsonl(data.train));
  });

  it("matches the committed data/instructions files byte for byte", () => {
    expect(readFileSync(`${root}/data/instructions/train.jsonl`, "utf8")).toBe(conversationsToJsonl(data.train));
    expect(readFileSync(`${root}/data/instructions/test.jsonl`, "utf8")).toBe(conversationsToJsonl(data.test));
  });

  it("covers every task, single- and multi-turn, with and without a system message", () => {
    for (const task of TASKS) {
      expect(data.train.some((c) => c.task === task)).toBe(true);
      expect(data.test.some((c) => c.task === task)).toBe(true);
    }
    expect(data.train.some((c) => c.messages.filter((m) => m.role === "assistant").length === 2)).toBe(true);
    expect(data.train.some((c) => c.messages[0].role === "system")).toBe(true);
  });

  it("gives correct answers", () => {
    for (const { task, messages } of data.train.slice(0, 2000)) {
      const [question, answer] = messages.filter((m) => m.role !== "system").map((m) => m.content);
      if (task === "addition" || task === "subtraction") {
        const [a, b] = question.match(/\d+/g)!.map(Number);
        const [first, second] = task === "subtraction" && question.startsWith("Subtract") ? [b, a] : [a, b]; // "Subtract 56 from 60."
        expect(answer).toBe(
          task === "addition"
            ? `${first} + ${second} is ${first + second}`
            : `${first} - ${second} is ${first - second}`,
        );
      }
      if (task === "reverse") expect(question).toContain([...answer].reverse().join(""));
      if (task === "uppercase") expect(question).toContain(answer.toLowerCase());
    }
    const france = data.train.find((c) => c.task === "capital" && c.messages.at(-2)?.content.includes(" France"));
    expect(france?.messages.at(-1)?.content).toBe("Paris");
  });

  it("holds out test questions: none occurs in training", () => {
    const trainQuestions = userQuestions(data.train);
    for (const conversation of data.test) {
      const opening = conversation.messages.find((m) => m.role === "user")!.content;
      expect(trainQuestions.has(opening), `${conversation.id}: "${opening}"`).toBe(false);
    }
  });

  it("holds out number pairs in both orders, and words entirely", () => {
    const pairsIn = (conversations: Conversation[], task: string) =>
      new Set(
        conversations
          .filter((c) => c.task === task)
          .map((c) =>
            c.messages
              .find((m) => m.role === "user")!
              .content.match(/\d+/g)!
              .map(Number)
              .sort()
              .join("+"),
          ),
      );
    const trainPairs = pairsIn(data.train, "addition");
    for (const pair of pairsIn(data.test, "addition")) expect(trainPairs.has(pair)).toBe(false);

    const wordOf = (c: Conversation) =>
      c.messages
        .filter((m) => m.role === "assistant")
        .at(-1)!
        .content.toLowerCase();
    const trainWords = new Set(data.train.filter((c) => c.task === "uppercase").map(wordOf));
    for (const c of data.test.filter((c) => c.task === "uppercase")) expect(trainWords.has(wordOf(c))).toBe(false);
  });

  it("asks held-out capital questions about countries whose capital is taught in training", () => {
    const taught = new Set(data.train.filter((c) => c.task === "capital").map((c) => c.messages.at(-1)!.content));
    const tested = data.test.filter((c) => c.task === "capital");
    expect(tested.length).toBeGreaterThanOrEqual(100);
    for (const c of tested) expect(taught.has(c.messages.at(-1)!.content)).toBe(true);
  });

  it("uses only characters of the course tokenizer, and every conversation fits the course context", () => {
    const tokenizer = CharTokenizer.fromText(loadStateOfTheUnion());
    addChatTokens(tokenizer);
    let longest = 0;
    for (const conversation of [...data.train, ...data.test]) {
      longest = Math.max(longest, renderConversation(tokenizer, conversation.messages).ids.length);
    }
    expect(longest).toBeLessThanOrEqual(128); // the course model's context
  });
});

describe("instruction JSONL", () => {
  it("round-trips conversations", () => {
    const sample = data.test.slice(0, 50);
    expect(parseConversations(conversationsToJsonl(sample))).toEqual(sample);
  });

  it("reports every malformed line with its line number and what is wrong", () => {
    const good = JSON.stringify({
      id: "a",
      task: "t",
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "hello" },
      ],
    });
    const lines = [
      good,
      "{not json",
      JSON.stringify({
        id: "b",
        task: "t",
        messages: [
          { role: "user", content: "hi" },
          { role: "bot", content: "hello" },
        ],
      }),
      "",
      JSON.stringify({ id: "c", task: "t", messages: [{ role: "user", content: "hi" }] }),
      JSON.stringify({
        id: "d",
        messages: [
          { role: "user", content: "" },
          { role: "assistant", content: "x" },
        ],
      }),
      good,
      "[1, 2]",
    ];
    let message = "";
    try {
      parseConversations(lines.join("\n"), "train.jsonl");
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^train\.jsonl has 8 problems/);
    expect(message).toContain("train.jsonl line 2: not valid JSON");
    expect(message).toContain('train.jsonl line 3: messages[1].role must be "assistant"');
    expect(message).toContain('got "bot"');
    expect(message).toContain('train.jsonl line 3: the last message must be the assistant\'s answer, got role "bot"');
    expect(message).toContain("train.jsonl line 5: the last message must be the assistant's answer");
    expect(message).toContain('train.jsonl line 6: "task" must be a non-empty string, got nothing');
    expect(message).toContain("train.jsonl line 6: messages[0].content must be a non-empty string");
    expect(message).toContain('train.jsonl line 7: id "a" is already used on line 1');
    expect(message).toContain("train.jsonl line 8: expected a JSON object, got [1,2]");
  });

  it("accepts a system message only as the first message", () => {
    const conversation = (roles: string[]) =>
      JSON.stringify({ id: "x", task: "t", messages: roles.map((role) => ({ role, content: "text" })) });
    expect(parseConversations(conversation(["system", "user", "assistant"]))).toHaveLength(1);
    expect(() => parseConversations(conversation(["user", "system", "assistant"]))).toThrow(
      /line 1: messages\[1\]\.role must be "assistant"/,
    );
  });
});
