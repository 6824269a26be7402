/**
 * What the page asks the model: the reply to a conversation (a chat model, fine-tuned with the chat tokens),
 * or the continuation of a text (a base model, which only continues text).
 *
 * The chat side does what lib's `chat` does (the chat template, the oldest exchanges forgotten when the
 * context is full, any chat token ends the reply), and scripts/chat.ts's history keeping, but calls
 * `generate` itself: the page needs the token ids as they come, for "See inside", not only the text.
 */
import { type ChatMessage, chatTokenIds } from "../lib/finetuning/chat-template.ts";
import { fitToContext } from "../lib/finetuning/chat.ts";
import { generate } from "../lib/generation/generate.ts";
import type { GPT } from "../lib/models/gpt.ts";
import type { Tokenizer } from "../lib/tokenizers/tokenizer.ts";
import { END_OF_TEXT } from "../lib/tokenizers/gpt2.ts";

export interface ReplySettings {
  temperature: number; // 0: always the most likely token (greedy)
  topK?: number; // undefined: all tokens
  topP: number;
  maxNewTokens: number;
  seed: number;
  system?: string; // chat: a system message that opens the conversation
}

export interface Reply {
  /** The tokens the model was given (the rendered conversation, or the text to continue). */
  prompt: number[];
  /** The tokens it wrote (a stop token not included). */
  tokens: number[];
  text: string;
  finishReason: "stop" | "length" | "aborted";
  seconds: number;
  /** Chat: oldest messages left out so the conversation fits the context window. */
  droppedMessages: number;
  /** Chat: whether the start of the learner's message had to be cut to fit. */
  truncatedLastMessage: boolean;
}

export interface ReplyOptions {
  /** Called with the prompt's tokens, before the first token is written. */
  onPrompt?: (prompt: number[]) => void;
  /** Called with each token as soon as it is written. */
  onToken?: (token: number) => void;
  /** Stops the reply after the current token (the Stop button). */
  signal?: AbortSignal;
}

/** Whether the tokenizer has the four chat tokens, i.e. the model was fine-tuned to chat. */
function hasChatTokens(tokenizer: Tokenizer): boolean {
  try {
    chatTokenIds(tokenizer);
    return true;
  } catch {
    return false;
  }
}

export class Conversation {
  /** "chat" for a model whose tokenizer has the chat tokens; a base model can only "continue" a text. */
  readonly mode: "chat" | "continue";
  private history: ChatMessage[] = [];
  private replies = 0;

  constructor(
    readonly model: GPT,
    readonly tokenizer: Tokenizer,
  ) {
    this.mode = hasChatTokens(tokenizer) ? "chat" : "continue";
  }

  /** Forgets the conversation. */
  reset(): void {
    this.history = [];
    this.replies = 0;
  }

  /**
   * The model's answer to `text` (chat) or its continuation of `text`, streamed token by token to `onToken`.
   * A chat reply becomes part of the conversation; a continuation does not (each one starts afresh).
   */
  async reply(text: string, settings: ReplySettings, options: ReplyOptions = {}): Promise<Reply> {
    const { contextLength } = this.model.config;
    let prompt: number[];
    let stopTokens: number[];
    let messages: ChatMessage[] = [];
    let droppedMessages = 0;
    let truncatedLastMessage = false;
    const system: ChatMessage[] = settings.system ? [{ role: "system", content: settings.system }] : [];
    if (this.mode === "chat") {
      messages = [...system, ...this.history, { role: "user", content: text }];
      // as lib's chat(): room for the reply, at most half the context
      const replyRoom = Math.min(settings.maxNewTokens, Math.floor(contextLength / 2));
      ({ prompt, droppedMessages, truncatedLastMessage } = fitToContext(
        this.tokenizer,
        messages,
        contextLength - replyRoom,
      ));
      // any chat token ends the reply: a poorly trained model may start the user's next turn by itself
      stopTokens = Object.values(chatTokenIds(this.tokenizer));
    } else {
      prompt = this.tokenizer.encode(text);
      if (prompt.length === 0) throw new Error("Type some text for the model to continue.");
      const endOfText = this.tokenizer.specialTokens[END_OF_TEXT];
      stopTokens = endOfText === undefined ? [] : [endOfText];
    }
    options.onPrompt?.(prompt);
    const started = performance.now();
    const result = await generate(this.model, prompt, {
      maxNewTokens: settings.maxNewTokens,
      temperature: settings.temperature,
      topK: settings.topK,
      topP: settings.topP,
      seed: settings.seed + this.replies++, // a new seed each turn, as scripts/chat.ts does: same conversation, same replies
      stopTokens,
      onToken: options.onToken,
      signal: options.signal,
    });
    const seconds = (performance.now() - started) / 1000;
    const tokens = result.tokens[0];
    const reply: Reply = {
      prompt,
      tokens,
      text: this.tokenizer.decode(tokens),
      finishReason: result.finishReason[0],
      seconds,
      droppedMessages,
      truncatedLastMessage,
    };
    if (this.mode === "chat") {
      // keep only what the model still sees, so the history never grows without bound
      this.history = [...messages.slice(system.length + droppedMessages), { role: "assistant", content: reply.text }];
    }
    return reply;
  }
}
