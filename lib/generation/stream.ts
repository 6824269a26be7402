import type { Tokenizer } from "../tokenizers/tokenizer.js";

/**
 * Turns a stream of token ids into a stream of text, for printing while generating.
 *
 * Decoding token by token is wrong for byte-level tokenizers: one character (an emoji, an accented
 * letter) can be split across tokens, and half a UTF-8 sequence decodes to "�". So the whole sequence so
 * far is decoded and only the new, complete part is written; text ending in "�" waits for the next token.
 */
export function textStream(tokenizer: Tokenizer, write: (text: string) => void): (token: number) => void {
  const tokens: number[] = [];
  let written = 0;
  return (token) => {
    tokens.push(token);
    const text = tokenizer.decode(tokens);
    if (text.endsWith("\uFFFD")) return;
    write(text.slice(written));
    written = text.length;
  };
}
