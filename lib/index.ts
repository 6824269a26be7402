/**
 * gpt-course: the public API of the course library. Everything a notebook, exercise or script needs is
 * exported here, grouped by the concept (and the folder) it belongs to.
 */
export type { Tokenizer, TokenizerJSON, EncodeOptions } from "./tokenizers/tokenizer.js";
