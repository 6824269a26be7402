/**
 * Exercise 01-char-tokenizer · reference solution.
 *
 * One id per character: the vocabulary is the text's distinct characters, sorted by code point, and a
 * character's id is its position in that sorted list.
 */
export class CharTokenizer {
  /** `chars[id]` is the character with that id. */
  readonly chars: string[];
  /** The reverse lookup, character → id: a Map answers in O(1) where `chars.indexOf` would scan. */
  readonly ids: Map<string, number>;

  constructor(text: string) {
    // `new Set(text)` iterates the string, which yields code points: "😀" stays one character instead of
    // two UTF-16 halves. Sort numerically by code point: the default sort compares UTF-16 units, which puts
    // emoji (stored as 0xD83D ...) before characters such as "！" (U+FF01).
    this.chars = [...new Set(text)].sort((a, b) => (a.codePointAt(0) as number) - (b.codePointAt(0) as number));
    this.ids = new Map(this.chars.map((c, id) => [c, id]));
  }

  get vocabSize(): number {
    return this.chars.length;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const c of text) {
      const id = this.ids.get(c);
      // Failing loudly beats inventing an id: a silent 0 would train the model on the wrong text.
      if (id === undefined) throw new Error(`CharTokenizer: ${JSON.stringify(c)} is not in the vocabulary`);
      ids.push(id);
    }
    return ids;
  }

  decode(ids: readonly number[]): string {
    return ids
      .map((id) => {
        const c = this.chars[id];
        if (c === undefined) throw new Error(`CharTokenizer: no character has id ${id}`);
        return c;
      })
      .join("");
  }
}
