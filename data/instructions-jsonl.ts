import * as fs from "node:fs";
import * as path from "node:path";
import type { ChatMessage, Role } from "gpt-course";

/**
 * The file format of the instruction data: JSON Lines, one conversation per line.
 *
 *   {"id":"addition-17","task":"addition","messages":[{"role":"user","content":"What is 47 + 38?"},{"role":"assistant","content":"47 + 38 is 85"}]}
 *
 * Schema of a conversation:
 *   id        non-empty string, unique in the file
 *   task      non-empty string: what the conversation tests, for accuracy per task
 *   messages  an optional system message first, then user and assistant messages taking turns, starting
 *             with the user and ending with the assistant; every content a non-empty string
 *
 * Reading checks every line and reports every problem with its line number, so a hand-edited file can be
 * fixed in one go instead of one crash at a time.
 */
export interface Conversation {
  id: string;
  task: string;
  messages: ChatMessage[];
}

/** One conversation per line; the file ends with a newline. */
export function conversationsToJsonl(conversations: readonly Conversation[]): string {
  return `${conversations.map((conversation) => JSON.stringify(conversation)).join("\n")}\n`;
}

export function writeConversations(file: string, conversations: readonly Conversation[]): void {
  fs.writeFileSync(file, conversationsToJsonl(conversations));
}

export function readConversations(file: string): Conversation[] {
  if (!fs.existsSync(file)) throw new Error(`readConversations: ${file} does not exist.`);
  return parseConversations(fs.readFileSync(file, "utf8"), file);
}

/** The course's instruction data, data/instructions/train.jsonl or test.jsonl, wherever this package is. */
export function instructionsFile(split: "train" | "test"): string {
  const packageRoot = path.basename(__dirname) === "dist" ? path.dirname(__dirname) : __dirname; // built or source
  return path.join(packageRoot, "instructions", `${split}.jsonl`);
}

/** The course's training or test conversations (`npm run data:instructions` writes them). */
export function readInstructions(split: "train" | "test"): Conversation[] {
  return readConversations(instructionsFile(split));
}

/** Most problems listed in one error; the rest are counted. */
const MAX_REPORTED = 20;

/**
 * Parses and checks JSONL text; `source` names it in error messages. Blank lines are skipped. Throws one
 * error listing the problems, e.g. `train.jsonl line 3: messages[1].role must be "user" or "assistant", got "bot"`.
 */
export function parseConversations(text: string, source = "JSONL"): Conversation[] {
  const conversations: Conversation[] = [];
  const problems: string[] = [];
  const firstLineOfId = new Map<string, number>();
  text.split("\n").forEach((rawLine, index) => {
    const line = rawLine.trim();
    const lineNumber = index + 1;
    if (line === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      problems.push(`${source} line ${lineNumber}: not valid JSON (${(error as Error).message})`);
      return;
    }
    const lineProblems = conversationProblems(value);
    if (lineProblems.length > 0) {
      problems.push(...lineProblems.map((problem) => `${source} line ${lineNumber}: ${problem}`));
      return;
    }
    const conversation = value as Conversation;
    const earlier = firstLineOfId.get(conversation.id);
    if (earlier !== undefined) {
      problems.push(
        `${source} line ${lineNumber}: id ${JSON.stringify(conversation.id)} is already used on line ${earlier}`,
      );
      return;
    }
    firstLineOfId.set(conversation.id, lineNumber);
    conversations.push(conversation);
  });
  if (problems.length > 0) {
    const more = problems.length > MAX_REPORTED ? `\n  ... and ${problems.length - MAX_REPORTED} more` : "";
    throw new Error(
      `${source} has ${problems.length} problem${problems.length > 1 ? "s" : ""}:\n  ${problems.slice(0, MAX_REPORTED).join("\n  ")}${more}`,
    );
  }
  return conversations;
}

/** What is wrong with `value` as a conversation; empty when nothing is. */
export function conversationProblems(value: unknown): string[] {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return [`expected a JSON object, got ${describe(value)}`];
  const record = value as Record<string, unknown>;
  const problems: string[] = [];
  const known = ["id", "task", "messages"];
  for (const key of Object.keys(record))
    if (!known.includes(key)) problems.push(`unknown field "${key}" (fields: ${known.join(", ")})`);
  for (const key of ["id", "task"]) {
    if (typeof record[key] !== "string" || record[key] === "")
      problems.push(`"${key}" must be a non-empty string, got ${describe(record[key])}`);
  }
  if (!Array.isArray(record.messages) || record.messages.length === 0) {
    problems.push(
      `"messages" must be a non-empty list of {"role", "content"} objects, got ${describe(record.messages)}`,
    );
    return problems;
  }
  const messages: unknown[] = record.messages;
  const hasSystem = (messages[0] as { role?: unknown } | null)?.role === "system";
  messages.forEach((message, i) => {
    const where = `messages[${i}]`;
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      problems.push(`${where} must be an object with "role" and "content", got ${describe(message)}`);
      return;
    }
    const { role, content, ...rest } = message as { role?: unknown; content?: unknown };
    for (const key of Object.keys(rest)) problems.push(`${where} has unknown field "${key}" (fields: role, content)`);
    const expected = expectedRole(i, hasSystem);
    if (role !== expected) {
      const allowed = i === 0 ? `"system" or "user"` : `"${expected}"`;
      problems.push(
        `${where}.role must be ${allowed} (system first if any, then user and assistant taking turns), got ${describe(role)}`,
      );
    }
    if (typeof content !== "string" || content.trim() === "")
      problems.push(`${where}.content must be a non-empty string, got ${describe(content)}`);
  });
  const last = messages.at(-1) as { role?: unknown } | null;
  if (last?.role !== "assistant")
    problems.push(`the last message must be the assistant's answer, got role ${describe(last?.role)}`);
  return problems;
}

/** The role message `i` must have: an optional system message, then user, assistant, user, ... */
function expectedRole(i: number, hasSystem: boolean): Role {
  if (hasSystem && i === 0) return "system";
  return (i - (hasSystem ? 1 : 0)) % 2 === 0 ? "user" : "assistant";
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const json = JSON.stringify(value);
  return json.length > 40 ? `${json.slice(0, 37)}...` : json;
}
