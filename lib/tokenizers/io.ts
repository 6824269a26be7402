/**
 * Saving and loading tokenizers as JSON files. A trained model is only usable with the tokenizer it was
 * trained with, so checkpoints store it next to the weights.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { BPETokenizer } from "./bpe.js";
import { CharTokenizer } from "./char.js";
import { GPT2Tokenizer } from "./gpt2.js";
import type { Tokenizer, TokenizerJSON } from "./tokenizer.js";

/** Rebuilds a tokenizer from `tokenizer.toJSON()`, choosing the class by `kind`. */
export function tokenizerFromJSON(json: TokenizerJSON): Tokenizer {
  const kind: unknown = typeof json === "object" && json !== null ? json.kind : undefined;
  switch (kind) {
    case "char":
      return CharTokenizer.fromJSON(json);
    case "bpe":
      return BPETokenizer.fromJSON(json);
    case "gpt2":
      return GPT2Tokenizer.fromJSON(json);
    default:
      throw new Error(
        `tokenizerFromJSON: unknown tokenizer kind ${JSON.stringify(kind)}; expected an object with kind ` +
          '"char", "bpe" or "gpt2", as written by toJSON()',
      );
  }
}

export function saveTokenizer(tokenizer: Tokenizer, path: string): void {
  writeFileSync(path, JSON.stringify(tokenizer.toJSON()));
}

export function loadTokenizer(path: string): Tokenizer {
  const text = readFileSync(path, "utf8");
  let json: TokenizerJSON;
  try {
    json = JSON.parse(text) as TokenizerJSON;
  } catch (error) {
    const reason = (error as Error).message;
    throw new Error(`loadTokenizer: ${path} is not valid JSON (${reason}); was it written by saveTokenizer?`);
  }
  return tokenizerFromJSON(json);
}
