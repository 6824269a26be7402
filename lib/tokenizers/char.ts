/**
 * The simplest tokenizer: one id per character.
 *
 * The vocabulary is the set of characters that occur in a text, sorted by code point so the same text
 * always gives the same ids. "Character" means Unicode code point, not JavaScript's UTF-16 unit: "😀" is
 * one character (two UTF-16 units), so the code walks strings with `for...of`, which yields code points,
 * never with `text[i]`, which yields UTF-16 units.
 *
 * Small vocabulary, long sequences: every character costs one position of the model's context. BPE
 * (bpe.ts) trades a bigger vocabulary for shorter sequences.
 */
import { BaseTokenizer, type TokenizerJSON } from "./tokenizer.js";

export class CharTokenizer extends BaseTokenizer {
  readonly kind = "char";
  /** `chars[id]` is the character with that id. */
  readonly chars: readonly string[];
  private readonly ids: Map<string, number>;

  constructor(chars: readonly string[]) {
    super(chars.length);
    this.chars = [...chars];
    const notOne = this.chars.find((c) => typeof c !== "string" || [...c].length !== 1);
    if (notOne !== undefined) {
      throw new Error(`CharTokenizer: each vocabulary entry must be one character, got ${JSON.stringify(notOne)}`);
    }
    this.ids = new Map(this.chars.map((c, id) => [c, id]));
    if (this.ids.size !== this.chars.length) {
      throw new Error("CharTokenizer: the character list has duplicates; each character needs exactly one id");
    }
  }

  /** The tokenizer whose vocabulary is every distinct character of `text`, sorted by code point. */
  static fromText(text: string): CharTokenizer {
    if (typeof text !== "string" || text.length === 0) {
      throw new Error("CharTokenizer.fromText: the text is empty; give it the text to collect the characters from");
    }
    // Compare code points numerically: JavaScript's default sort compares UTF-16 units, which puts
    // emoji (surrogate pairs, 0xD800..) before characters like U+FF01.
    const chars = [...new Set(text)].sort((a, b) => (a.codePointAt(0) as number) - (b.codePointAt(0) as number));
    return new CharTokenizer(chars);
  }

  static fromJSON(json: TokenizerJSON): CharTokenizer {
    if (json.kind !== "char") {
      throw new Error(`CharTokenizer.fromJSON: expected kind "char", got ${JSON.stringify(json.kind)}`);
    }
    if (!Array.isArray(json.chars)) {
      throw new Error('CharTokenizer.fromJSON: "chars" must be the list of the vocabulary\'s characters');
    }
    const tokenizer = new CharTokenizer(json.chars as string[]);
    tokenizer.restoreSpecialTokens(json.specialTokens);
    return tokenizer;
  }

  encodeOrdinary(text: string): number[] {
    const ids: number[] = [];
    for (const c of text) {
      const id = this.ids.get(c);
      if (id === undefined) {
        const codePoint = (c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
        throw new Error(
          `CharTokenizer cannot encode ${JSON.stringify(c)} (U+${codePoint}): it is not among the ` +
            `${this.chars.length} characters of its vocabulary. Build the tokenizer from text that contains ` +
            "every character you will encode (or replace the character first).",
        );
      }
      ids.push(id);
    }
    return ids;
  }

  protected decodeOrdinary(ids: number[]): string {
    return ids.map((id) => this.chars[id]).join("");
  }

  toJSON(): TokenizerJSON {
    return { kind: this.kind, chars: [...this.chars], specialTokens: this.specialTokens };
  }
}
