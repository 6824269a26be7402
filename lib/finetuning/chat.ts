import { generate } from "../generation/generate.js";
import type { SamplingOptions } from "../generation/sampling.js";
import { textStream } from "../generation/stream.js";
import type { GPT } from "../models/gpt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { type ChatMessage, chatTokenIds, renderPrompt } from "./chat-template.js";

export interface ChatOptions extends SamplingOptions {
  maxNewTokens?: number; // longest reply in tokens (default 100)
  /** Tokens kept free for the reply when the history is cropped (default: maxNewTokens, at most half the context). */
  replyRoom?: number;
  seed?: number; // seeds the sampling: same seed, same reply (default 1337)
  /** Called with each new piece of the reply's text as soon as it is generated. */
  onToken?: (text: string) => void;
  /** Stops the reply after the current token when aborted (Ctrl-C in the chat CLI). */
  signal?: AbortSignal;
}

export interface ChatReply {
  text: string; // the assistant's reply, without the closing <|end|>
  tokens: number[];
  /** "stop": the model ended its turn; "length": maxNewTokens was reached; "aborted": the signal fired. */
  finishReason: "stop" | "length" | "aborted";
  /** Oldest messages left out so the conversation fits the context window (0 when all fit). */
  droppedMessages: number;
  /** Whether the last user message had to be cut (its start dropped) to fit on its own. */
  truncatedLastMessage: boolean;
}

/**
 * The assistant's reply to a conversation: render it with the chat template, append `<|assistant|>`, and
 * generate until the model writes `<|end|>`.
 *
 * A model sees at most `contextLength` tokens, and the reply needs room too. When the conversation is
 * longer, the oldest exchanges go first (a user message together with the reply that followed it), as a
 * person forgets the start of a long conversation; the system message stays, since it says how to behave
 * throughout. If the last user message alone is still too long, its beginning is cut: questions tend to
 * end with what is asked.
 *
 * `messages` usually ends with a user message; it is not changed.
 */
export async function chat(
  model: GPT,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  options: ChatOptions = {},
): Promise<ChatReply> {
  const { maxNewTokens = 100, seed = 1337 } = options;
  const chatTokens = chatTokenIds(tokenizer);
  if (tokenizer.vocabSize > model.config.vocabSize) {
    throw new Error(
      `chat: the tokenizer has ${tokenizer.vocabSize} ids but the model only ${model.config.vocabSize}. ` +
        "Was the model fine-tuned with this tokenizer's chat tokens?",
    );
  }
  const { contextLength } = model.config;
  const replyRoom = options.replyRoom ?? Math.min(maxNewTokens, Math.floor(contextLength / 2));
  const fitted = fitToContext(tokenizer, messages, contextLength - replyRoom);
  const stream = options.onToken ? textStream(tokenizer, options.onToken) : undefined;
  const result = await generate(model, fitted.prompt, {
    maxNewTokens,
    temperature: options.temperature,
    topK: options.topK,
    topP: options.topP,
    seed,
    // Any chat token ends the reply: a well-trained model writes <|end|>; a poorly trained one may start
    // the user's next turn by itself, which is not part of its reply either.
    stopTokens: [chatTokens.end, chatTokens.user, chatTokens.assistant, chatTokens.system],
    onToken: stream ? (token) => stream(token) : undefined,
    signal: options.signal,
  });
  const tokens = result.tokens[0];
  return {
    text: tokenizer.decode(tokens),
    tokens,
    finishReason: result.finishReason[0],
    droppedMessages: fitted.droppedMessages,
    truncatedLastMessage: fitted.truncatedLastMessage,
  };
}

/**
 * The prompt for `messages` in at most `budget` tokens: oldest exchanges dropped first, the system message
 * kept, and the last message's start cut if it still does not fit.
 */
export function fitToContext(
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  budget: number,
): { prompt: number[]; droppedMessages: number; truncatedLastMessage: boolean } {
  const system = messages[0]?.role === "system" ? [messages[0]] : [];
  let history = messages.slice(system.length);
  if (history.length === 0) throw new Error("chat: there is no message to reply to.");
  let droppedMessages = 0;
  let prompt = renderPrompt(tokenizer, [...system, ...history]);
  while (prompt.length > budget && history.length > 1) {
    // Drop the oldest exchange: one message, and the assistant reply after it if there is one.
    const dropped = history.length > 2 && history[1].role === "assistant" ? 2 : 1;
    history = history.slice(dropped);
    droppedMessages += dropped;
    prompt = renderPrompt(tokenizer, [...system, ...history]);
  }
  if (prompt.length <= budget) return { prompt, droppedMessages, truncatedLastMessage: false };

  // Only the last message is left and it is still too long: keep as much of its end as fits.
  const last = history[0];
  const overhead = renderPrompt(tokenizer, [...system, { role: last.role, content: "" }]).length;
  const room = budget - overhead;
  if (room < 1) {
    throw new Error(
      `chat: the system message alone takes ${overhead} of the ${budget} tokens available for the prompt; ` +
        "shorten it or leave less room for the reply.",
    );
  }
  const contentIds = tokenizer.encode(last.content).slice(-room);
  const content = tokenizer.decode(contentIds);
  prompt = renderPrompt(tokenizer, [...system, { role: last.role, content }]);
  // A byte-level tokenizer may re-encode a cut text into a different number of tokens: trim until it fits.
  for (let cut = 1; prompt.length > budget; cut++) {
    prompt = renderPrompt(tokenizer, [
      ...system,
      { role: last.role, content: tokenizer.decode(contentIds.slice(cut)) },
    ]);
  }
  return { prompt, droppedMessages, truncatedLastMessage: true };
}
