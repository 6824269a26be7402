/**
 * What every tokenizer in this course can do.
 *
 * A tokenizer turns text into a list of integer ids (`encode`) and back (`decode`). A model only ever sees
 * the ids: its embedding table has one row per id, so `vocabSize` fixes the size of that table.
 *
 * Special tokens (like GPT-2's `<|endoftext|>` or a chat model's `<|user|>`) are ids that ordinary text can
 * never produce. `encode` turns their literal spelling into their id only when asked to with
 * `allowedSpecial`, so a user who types "<|endoftext|>" into a chat cannot forge one.
 */
export interface EncodeOptions {
  /** Special tokens whose spelling in the text becomes their id: a list of names, or "all". Default: none. */
  allowedSpecial?: readonly string[] | "all";
}

export interface Tokenizer {
  /** A short name for messages and checkpoints, e.g. "char", "bpe", "gpt2". */
  readonly kind: string;
  /** Number of distinct ids, special tokens included: ids are 0 .. vocabSize - 1. */
  readonly vocabSize: number;
  /** Special tokens by spelling, e.g. { "<|endoftext|>": 50256 }. */
  readonly specialTokens: Readonly<Record<string, number>>;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[]): string;
  /** Adds special tokens (for a chat template) with ids after the current vocabulary; returns their ids. */
  addSpecialTokens(spellings: readonly string[]): number[];
  /** A JSON-friendly description from which `tokenizerFromJSON` rebuilds the same tokenizer. */
  toJSON(): TokenizerJSON;
}

/** Saved form of a tokenizer: `kind` says which class reads the rest. */
export interface TokenizerJSON {
  kind: string;
  [field: string]: unknown;
}
