import type { Tokenizer } from "../tokenizers/tokenizer.js";

/**
 * The chat template: how a conversation becomes one token sequence a GPT can read and continue.
 *
 * A base model only continues text. A chat model continues a *conversation*, so it has to see who is
 * speaking. Each message becomes `<|role|>content<|end|>`:
 *
 *   <|system|>You are a helpful assistant.<|end|><|user|>What is 47 + 38?<|end|><|assistant|>47 + 38 is 85<|end|>
 *
 * The four markers are special tokens: ids of their own, added after the tokenizer's vocabulary, that
 * ordinary text can never produce (a user who types "<|end|>" gets the characters, not the token).
 *
 * To get a reply, the conversation so far is rendered and `<|assistant|>` appended; the model writes the
 * answer and then `<|end|>`, which is where generation stops. That is why `<|end|>` after an assistant
 * message is part of what the model is trained to produce.
 */
export type Role = "system" | "user" | "assistant";

export interface ChatMessage {
  role: Role;
  content: string;
}

export const ROLES: readonly Role[] = ["system", "user", "assistant"];

/** Spellings of the chat template's special tokens. */
export const CHAT_TOKENS = {
  system: "<|system|>",
  user: "<|user|>",
  assistant: "<|assistant|>",
  end: "<|end|>",
} as const;

/** The ids of the four chat tokens in one tokenizer. */
export interface ChatTokenIds {
  system: number;
  user: number;
  assistant: number;
  end: number;
}

/**
 * Adds the chat tokens to `tokenizer` (ids right after its vocabulary; a token it already has keeps its id)
 * and returns their ids. The model's embedding table must then grow to `tokenizer.vocabSize` rows: see
 * `extendVocabulary`.
 */
export function addChatTokens(tokenizer: Tokenizer): ChatTokenIds {
  const [system, user, assistant, end] = tokenizer.addSpecialTokens([
    CHAT_TOKENS.system,
    CHAT_TOKENS.user,
    CHAT_TOKENS.assistant,
    CHAT_TOKENS.end,
  ]);
  return { system, user, assistant, end };
}

/** The chat tokens' ids in a tokenizer that has them; a clear error when it does not. */
export function chatTokenIds(tokenizer: Tokenizer): ChatTokenIds {
  const special = tokenizer.specialTokens;
  const missing = Object.values(CHAT_TOKENS).filter((spelling) => special[spelling] === undefined);
  if (missing.length > 0) {
    throw new Error(
      `This ${tokenizer.kind} tokenizer has no chat token${missing.length > 1 ? "s" : ""} ${missing.join(", ")}. ` +
        "Call addChatTokens(tokenizer) before fine-tuning, or load a fine-tuned (chat) checkpoint.",
    );
  }
  return {
    system: special[CHAT_TOKENS.system],
    user: special[CHAT_TOKENS.user],
    assistant: special[CHAT_TOKENS.assistant],
    end: special[CHAT_TOKENS.end],
  };
}

/**
 * A rendered conversation: the token ids, and for each id whether the model is trained to produce it.
 * `assistantMask[i]` is 1 for the tokens of assistant messages, their closing `<|end|>` included, and 0
 * for everything the model is given rather than asked to write: the role markers, system and user text.
 */
export interface RenderedConversation {
  ids: number[];
  assistantMask: number[];
}

/**
 * Renders `messages` with the chat template. Message text is encoded as ordinary text, so special-token
 * spellings inside it stay plain characters: only the template itself can place a chat token.
 */
export function renderConversation(tokenizer: Tokenizer, messages: readonly ChatMessage[]): RenderedConversation {
  const tokens = chatTokenIds(tokenizer);
  const ids: number[] = [];
  const assistantMask: number[] = [];
  const push = (id: number, trained: boolean) => {
    ids.push(id);
    assistantMask.push(trained ? 1 : 0);
  };
  messages.forEach((message, i) => {
    checkMessage(message, i);
    const isAssistant = message.role === "assistant";
    push(tokens[message.role], false); // the role marker is given: the model never has to guess who speaks
    for (const id of tokenizer.encode(message.content)) push(id, isAssistant);
    push(tokens.end, isAssistant); // the assistant's <|end|> is trained: it is how the model learns to stop
  });
  return { ids, assistantMask };
}

/**
 * The prompt for the next reply: the conversation so far, then `<|assistant|>`. Whatever the model
 * generates next is the assistant's message, up to the `<|end|>` it produces.
 */
export function renderPrompt(tokenizer: Tokenizer, messages: readonly ChatMessage[]): number[] {
  return [...renderConversation(tokenizer, messages).ids, chatTokenIds(tokenizer).assistant];
}

function checkMessage(message: ChatMessage, index: number): void {
  if (typeof message !== "object" || message === null || !ROLES.includes(message.role)) {
    const role = typeof message === "object" && message !== null ? JSON.stringify(message.role) : "missing";
    throw new Error(`renderConversation: message ${index} has role ${role}; expected one of ${ROLES.join(", ")}.`);
  }
  if (typeof message.content !== "string") {
    throw new Error(`renderConversation: message ${index} (${message.role}) has no text: "content" must be a string.`);
  }
}
