/**
 * GPT-2's tokenizer: byte-level BPE with 50,000 merges, 50,257 ids, `<|endoftext|>` = 50256.
 *
 * OpenAI publishes it (as "r50k_base") in tiktoken's format: a list of tokens whose position is the id,
 * not a merge list. Two ways to use it here:
 * - `GPT2Tokenizer`: encoding by the npm package gpt-tokenizer, a fast and well-tested implementation.
 * - `bpeFromGPT2()`: our own `BPETokenizer` with the merges recovered from that list. It produces exactly
 *   the same ids (the tests check this on a few hundred KB of text), which shows that the code in
 *   bpe.ts is all there is to GPT-2's tokenizer.
 */
import r50kRanks from "gpt-tokenizer/bpeRanks/r50k_base";
import { encode as r50kEncode } from "gpt-tokenizer/encoding/r50k_base";
import { BPETokenizer, GPT2_PATTERN } from "./bpe.js";
import { BaseTokenizer, decodeBytes, type TokenizerJSON } from "./tokenizer.js";

/** GPT-2's only special token, which separates documents in its training data. */
export const END_OF_TEXT = "<|endoftext|>";

/** Ordinary text only: gpt-tokenizer would otherwise throw when the text contains "<|endoftext|>". */
const ORDINARY = { disallowedSpecial: new Set<string>() };

let tokenBytes: Uint8Array[] | undefined;

/**
 * `gpt2TokenBytes()[id]`: the bytes of each of GPT-2's 50,256 ordinary tokens. gpt-tokenizer stores a
 * token as a string when its bytes are valid UTF-8 and as a list of bytes otherwise (e.g. half of "é").
 */
export function gpt2TokenBytes(): readonly Uint8Array[] {
  if (tokenBytes === undefined) {
    const utf8 = new TextEncoder();
    tokenBytes = r50kRanks.map((token) => (typeof token === "string" ? utf8.encode(token) : Uint8Array.from(token)));
  }
  return tokenBytes;
}

export class GPT2Tokenizer extends BaseTokenizer {
  readonly kind = "gpt2";

  constructor() {
    super(gpt2TokenBytes().length);
    this.addSpecialTokens([END_OF_TEXT]);
  }

  /**
   * Special tokens are handled by `BaseTokenizer.encode`, which splits on them anywhere in the text;
   * gpt-tokenizer 4.0.0's own `allowedSpecial` only recognises one at the very start of the string.
   */
  encodeOrdinary(text: string): number[] {
    return r50kEncode(text, ORDINARY);
  }

  /** From the token bytes: gpt-tokenizer's decode would drop a leading U+FEFF and break round trips. */
  protected decodeOrdinary(ids: number[]): string {
    return decodeBytes(gpt2TokenBytes(), ids);
  }

  static fromJSON(json: TokenizerJSON): GPT2Tokenizer {
    if (json.kind !== "gpt2") {
      throw new Error(`GPT2Tokenizer.fromJSON: expected kind "gpt2", got ${JSON.stringify(json.kind)}`);
    }
    const tokenizer = new GPT2Tokenizer();
    tokenizer.restoreSpecialTokens(json.specialTokens);
    return tokenizer;
  }

  /** The vocabulary itself ships with gpt-tokenizer; only the special tokens need saving. */
  toJSON(): TokenizerJSON {
    return { kind: this.kind, specialTokens: this.specialTokens };
  }
}

/** GPT-2's tokenizer rebuilt as our own `BPETokenizer` (see `BPETokenizer.fromRanks`). */
export function bpeFromGPT2(): BPETokenizer {
  const bpe = BPETokenizer.fromRanks(gpt2TokenBytes(), { pattern: GPT2_PATTERN });
  bpe.addSpecialTokens([END_OF_TEXT]);
  return bpe;
}
