/**
 * Exercise 01-char-tokenizer: a character tokenizer. Read README.md in this folder, fill in the TODOs, then
 * check your work with `npm run exercise -- 01-char-tokenizer`.
 */
import { todo } from "../harness/check.js";

export class CharTokenizer {
  /** `chars[id]` is the character with that id: the text's distinct characters, sorted by code point. */
  readonly chars: string[];
  /** The reverse lookup, character → id. */
  readonly ids: Map<string, number>;

  constructor(text: string) {
    // TODO: collect the distinct characters of `text` and sort them by code point; then fill `ids`.
    //       Careful: "😀" is one character but two UTF-16 units; `text[i]` and `text.split("")` cut it in half.
    todo("CharTokenizer constructor: build the sorted list of distinct characters (chars) and the map ids", text);
  }

  /** Number of distinct ids. */
  get vocabSize(): number {
    return this.chars.length;
  }

  /** Text → one id per character. Throws an Error for a character that is not in the vocabulary. */
  encode(text: string): number[] {
    // TODO: look up each character's id (a Map from character to id makes this fast).
    return todo("CharTokenizer.encode", text);
  }

  /** Ids → text. */
  decode(ids: readonly number[]): string {
    // TODO: turn each id back into its character and join them.
    return todo("CharTokenizer.decode", ids);
  }
}
