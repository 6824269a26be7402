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

/**
 * The part every tokenizer shares: special tokens. A subclass only says how ordinary text becomes ids
 * (`encodeOrdinary`) and back (`decodeOrdinary`).
 *
 * Ids are laid out as `0 .. baseVocabSize - 1` for ordinary tokens, then one id per special token in the
 * order they were added. So `vocabSize = baseVocabSize + number of special tokens`, and adding a special
 * token never moves an existing id (a trained model's embedding rows keep their meaning).
 */
export abstract class BaseTokenizer implements Tokenizer {
  abstract readonly kind: string;
  /** Special tokens in id order: `specialList[i]` has id `baseVocabSize + i`. */
  private readonly specialList: string[] = [];
  private readonly specialIds = new Map<string, number>();

  /** `baseVocabSize`: how many ids ordinary text can produce. */
  protected constructor(readonly baseVocabSize: number) {}

  get vocabSize(): number {
    return this.baseVocabSize + this.specialList.length;
  }

  get specialTokens(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.specialIds);
  }

  /** Text to ids with no special tokens at all: every character is ordinary text. */
  abstract encodeOrdinary(text: string): number[];
  /** Ids (all below `baseVocabSize`) to text. */
  protected abstract decodeOrdinary(ids: number[]): string;
  abstract toJSON(): TokenizerJSON;

  /** Gives each new spelling the next free id; a spelling that is already special keeps its id. */
  addSpecialTokens(spellings: readonly string[]): number[] {
    return spellings.map((spelling) => {
      if (typeof spelling !== "string" || spelling.length === 0) {
        throw new Error(
          `addSpecialTokens: a special token must be a non-empty string, got ${JSON.stringify(spelling)}`,
        );
      }
      const existing = this.specialIds.get(spelling);
      if (existing !== undefined) return existing;
      const id = this.vocabSize;
      this.specialList.push(spelling);
      this.specialIds.set(spelling, id);
      return id;
    });
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") {
      throw new Error(`${this.kind} tokenizer: encode expects a string, got ${typeof text}`);
    }
    const allowed = this.allowedSpellings(options.allowedSpecial);
    if (allowed.length === 0) return this.encodeOrdinary(text);
    // Split on the allowed spellings. The capture group keeps them: odd pieces are special tokens, even
    // pieces the ordinary text between them. Longest spelling first, so "<|im_start|>" wins over a
    // hypothetical "<|im" where both match at the same place.
    const alternatives = [...allowed]
      .sort((a, b) => b.length - a.length)
      .map(escapeRegExp)
      .join("|");
    const pieces = text.split(new RegExp(`(${alternatives})`));
    const ids: number[] = [];
    pieces.forEach((piece, i) => {
      if (i % 2 === 1) ids.push(this.specialIds.get(piece) as number);
      else for (const id of this.encodeOrdinary(piece)) ids.push(id);
    });
    return ids;
  }

  decode(ids: readonly number[]): string {
    if (ids.some((id) => Array.isArray(id))) {
      throw new Error(
        `${this.kind} tokenizer: decode takes one sequence of ids (number[]), but got an array of arrays. ` +
          "generate returns one array per sequence: decode each, e.g. tokenizer.decode(result.tokens[0]).",
      );
    }
    let text = "";
    let run: number[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(
          `${this.kind} tokenizer: cannot decode id ${id}: ids must be integers from 0 to ${this.vocabSize - 1} ` +
            `(vocabSize ${this.vocabSize}). Was it produced by a different tokenizer or model?`,
        );
      }
      if (id < this.baseVocabSize) {
        run.push(id);
        continue;
      }
      // A special token: flush the ordinary ids before it, then append its spelling.
      text += this.decodeOrdinary(run) + this.specialList[id - this.baseVocabSize];
      run = [];
    }
    return text + this.decodeOrdinary(run);
  }

  /** For `fromJSON`: re-adds saved special tokens (none when absent), checking that they get their saved ids. */
  protected restoreSpecialTokens(saved: unknown = {}): void {
    if (typeof saved !== "object" || saved === null || Array.isArray(saved)) {
      throw new Error(`${this.kind} tokenizer JSON: "specialTokens" must be an object like {"<|endoftext|>": 50256}`);
    }
    const entries = Object.entries(saved).sort((a, b) => Number(a[1]) - Number(b[1]));
    for (const [spelling, id] of entries) {
      const [given] = this.addSpecialTokens([spelling]);
      if (given !== id) {
        throw new Error(
          `${this.kind} tokenizer JSON: special token ${JSON.stringify(spelling)} has id ${JSON.stringify(id)}, ` +
            `but special ids must follow the ordinary ones without gaps (expected ${given}). The file is corrupt.`,
        );
      }
    }
  }

  private allowedSpellings(allowedSpecial: EncodeOptions["allowedSpecial"]): readonly string[] {
    if (allowedSpecial === undefined) return [];
    if (allowedSpecial === "all") return this.specialList;
    if (!Array.isArray(allowedSpecial)) {
      throw new Error(`${this.kind} tokenizer: allowedSpecial must be a list of special tokens or "all"`);
    }
    for (const spelling of allowedSpecial) {
      if (!this.specialIds.has(spelling)) {
        const known = this.specialList.length > 0 ? this.specialList.join(", ") : "none";
        throw new Error(
          `${this.kind} tokenizer: allowedSpecial names ${JSON.stringify(spelling)}, which is not a special token ` +
            `of this tokenizer (its special tokens: ${known}). Add it first with addSpecialTokens.`,
        );
      }
    }
    return allowedSpecial;
  }
}

/** `s` with every regular-expression metacharacter escaped, so it matches itself literally. */
function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * The text of byte-level tokens, `vocab[id]` being the bytes of token `id`: their bytes joined, then read
 * as UTF-8 the way Python's `bytes.decode("utf-8", errors="replace")` does it: an invalid or cut-off
 * sequence becomes U+FFFD "�" instead of an error. Byte-level tokenizers need this because a model can
 * emit ids whose bytes stop in the middle of a character. `ignoreBOM` keeps a leading U+FEFF (by default
 * TextDecoder silently drops it, which would break round trips).
 */
export function decodeBytes(vocab: readonly Uint8Array[], ids: readonly number[]): string {
  const bytes = new Uint8Array(ids.reduce((n, id) => n + vocab[id].length, 0));
  let offset = 0;
  for (const id of ids) {
    bytes.set(vocab[id], offset);
    offset += vocab[id].length;
  }
  return utf8Decoder.decode(bytes);
}
