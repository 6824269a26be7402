/**
 * Byte-level Byte Pair Encoding (BPE): the tokenizer family of GPT-2, GPT-4 and most LLMs.
 * Modelled on minbpe's RegexTokenizer (github.com/karpathy/minbpe).
 *
 * Start from bytes: UTF-8 spells any text with the 256 byte values, so ids 0..255 can encode everything
 * (no "unknown character" error as in char.ts). Training then repeatedly takes the most frequent adjacent
 * pair of tokens and gives it a new id: merge 0 creates id 256, merge 1 id 257, ... until `vocabSize`.
 * Frequent words become single tokens and rare ones a few pieces; English gets ~4 characters per token.
 *
 * Before counting, a regular expression splits the text into chunks (a word with its leading space, a
 * number, a run of punctuation, a run of whitespace) and pairs are only counted inside a chunk. So no token
 * glues a word to the punctuation after it: "dog", "dog." and "dog!" share the token " dog".
 *
 * Encoding replays training: inside each chunk, merge the adjacent pair that was learned earliest (lowest
 * id), and again, until no learned pair is left.
 */
import { BaseTokenizer, decodeBytes, type TokenizerJSON } from "./tokenizer.js";

/**
 * GPT-2's split pattern, read left to right (the first alternative that matches wins):
 * `'s|'t|'re|'ve|'m|'ll|'d` English contractions; ` ?\p{L}+` letters with an optional leading space;
 * ` ?\p{N}+` digits likewise; ` ?[^\s\p{L}\p{N}]+` everything else (punctuation, emoji, ...);
 * `\s+(?!\S)` whitespace, but not its last character when a word follows (that space goes with the word);
 * `\s+` any whitespace left. Together they match every character, so no text is lost.
 */
export const GPT2_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;

/**
 * GPT-2's pattern, except that every digit is a chunk of its own (`\p{N}` instead of ` ?\p{N}+`), as in
 * Llama's tokenizer: no merge can glue digits together, so "47 + 38" is 4, 7, " +", " ", 3, 8. Arithmetic then
 * works on digits, the same ten tokens in every number, instead of on "47" and "38" as unrelated tokens.
 */
export const DIGITS_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;

/** What `onMerge` is told after each training step. */
export interface MergeStep {
  /** 0 for the first merge. */
  step: number;
  /** The two ids that were merged. */
  pair: [number, number];
  /** The new token's id: 256 + step. */
  id: number;
  /** How often the pair occurred (inside chunks) when it was chosen. */
  count: number;
  /** The new token as text (a piece of a multi-byte character shows as U+FFFD). */
  token: string;
}

export interface TrainOptions {
  /** The split pattern (a regular expression source, used with the `u` flag). Default: GPT2_PATTERN. */
  pattern?: string;
  /** Called after every merge, e.g. to watch training in a notebook. */
  onMerge?: (step: MergeStep) => void;
}

/**
 * A pair of ids packed into one number, a fast Map key: `a * 2^21 + b` is exact in a float64 (below 2^53)
 * while ids stay below 2^21. Ordering keys orders pairs by first id, then second id.
 */
const PAIR_BASE = 2 ** 21;
export const pairKey = (a: number, b: number): number => a * PAIR_BASE + b;

/** Distinct chunks whose encoding is remembered; the cache is emptied when it grows past this. */
const CACHE_LIMIT = 100_000;

const utf8 = new TextEncoder();

export class BPETokenizer extends BaseTokenizer {
  readonly kind = "bpe";
  /** The split pattern's source. */
  readonly pattern: string;
  /** `merges[i]` is the pair of ids that id `256 + i` stands for. */
  readonly merges: readonly (readonly [number, number])[];
  /**
   * `byteIds[b]` is the id of the one-byte token b. Our own training uses id = byte value; GPT-2 numbers its
   * byte tokens differently ("!" is 0), and `fromRanks` keeps its numbering so the ids match GPT-2's.
   */
  readonly byteIds: readonly number[];
  private readonly regex: RegExp;
  /** pairKey(a, b) -> the id the pair merges into; the lower the id, the earlier the merge. */
  private readonly mergeIds = new Map<number, number>();
  /** `vocab[id]` is the bytes the token stands for. */
  private readonly vocab: Uint8Array[] = [];
  /** Chunk -> ids: real text repeats the same words over and over, so each is merged only once. */
  private readonly cache = new Map<string, number[]>();

  constructor(
    merges: readonly (readonly [number, number])[],
    options: { pattern?: string; byteIds?: readonly number[] } = {},
  ) {
    super(256 + merges.length);
    this.pattern = options.pattern ?? GPT2_PATTERN;
    this.regex = compilePattern(this.pattern);
    this.byteIds = options.byteIds ? [...options.byteIds] : Array.from({ length: 256 }, (_, b) => b);
    const isByteId = (id: number): boolean => Number.isInteger(id) && id >= 0 && id < 256;
    if (this.byteIds.length !== 256 || new Set(this.byteIds).size !== 256 || !this.byteIds.every(isByteId)) {
      throw new Error("BPETokenizer: byteIds must give each of the 256 byte values a different id from 0 to 255");
    }
    if (merges.length > PAIR_BASE - 256) {
      throw new Error(`BPETokenizer: at most ${PAIR_BASE - 256} merges are supported, got ${merges.length}`);
    }
    this.byteIds.forEach((id, byte) => (this.vocab[id] = Uint8Array.of(byte)));
    this.merges = merges.map(([a, b], i) => {
      const id = 256 + i;
      if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < 0 || a >= id || b >= id) {
        throw new Error(
          `BPETokenizer: merge ${i} is ${JSON.stringify([a, b])}, but it can only combine existing ids, ` +
            `0 to ${id - 1} (the 256 bytes and the ${i} earlier merges)`,
        );
      }
      if (this.mergeIds.has(pairKey(a, b))) {
        throw new Error(`BPETokenizer: merge ${i} repeats the pair ${JSON.stringify([a, b])}, already merged earlier`);
      }
      this.mergeIds.set(pairKey(a, b), id);
      this.vocab[id] = concatBytes(this.vocab[a], this.vocab[b]);
      return [a, b] as const;
    });
  }

  /**
   * Learns `vocabSize - 256` merges from `text`: minbpe's training loop. Count every adjacent pair, give the
   * most frequent one a new id, replace it everywhere, repeat. A tie goes to the pair with the smallest first
   * id, then the smallest second id (older tokens first, e.g. two raw bytes before a merged token), so
   * training never depends on the order the pairs were counted in.
   *
   * Every step recounts all pairs, so a step takes time in proportion to the text's distinct words: fine for
   * a few hundred merges. `trainBPEFast` (bpe-fast.ts) learns exactly the same merges much faster, for the
   * vocabularies of thousands of tokens that models use.
   */
  static train(text: string, vocabSize: number, options: TrainOptions = {}): BPETokenizer {
    const pattern = options.pattern ?? GPT2_PATTERN;
    // 1. Cut the text into chunks, each as its bytes, and count each distinct chunk once: " the" may occur
    //    40,000 times in the text but is one chunk of weight 40,000.
    const { chunks, weights } = distinctChunks(text, vocabSize, pattern, "BPETokenizer.train");
    const vocab: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
    const merges: [number, number][] = [];
    for (let step = 0; step < vocabSize - 256; step++) {
      // 2. How often each adjacent pair occurs; pairs never span two chunks.
      const counts = new Map<number, number>();
      chunks.forEach((ids, c) => {
        for (let i = 0; i + 1 < ids.length; i++) {
          const key = pairKey(ids[i], ids[i + 1]);
          counts.set(key, (counts.get(key) ?? 0) + weights[c]);
        }
      });
      // 3. The most frequent pair becomes token 256 + step...
      const { pair, count } = mostFrequentPair(counts, step, vocabSize, "BPETokenizer.train");
      const [a, b] = pair;
      const id = 256 + step;
      // 4. ...and replaces the pair in every chunk, so the next count sees the new token.
      for (let c = 0; c < chunks.length; c++) chunks[c] = mergePair(chunks[c], a, b, id);
      merges.push(pair);
      vocab.push(concatBytes(vocab[a], vocab[b]));
      options.onMerge?.({ step, pair, id, count, token: decodeBytes(vocab, [id]) });
    }
    return new BPETokenizer(merges, { pattern });
  }

  /**
   * Recovers the merge list of a tokenizer published as ranks (tiktoken's format, used by GPT-2 and GPT-4):
   * `tokens[id]` is the bytes of token `id`, ids 0..255 are the single bytes (in any order) and every later
   * token was made by one merge. Which merge? The one BPE itself would do: encoding the token's bytes with
   * only the earlier merges must end in exactly two tokens, and those two are the pair.
   */
  static fromRanks(tokens: readonly Uint8Array[], options: { pattern?: string } = {}): BPETokenizer {
    const byteIds: number[] = [];
    for (let id = 0; id < 256; id++) {
      if (tokens[id]?.length !== 1) {
        throw new Error(
          `BPETokenizer.fromRanks: tokens 0 to 255 must be single bytes, but token ${id} is not one byte`,
        );
      }
      byteIds[tokens[id][0]] = id;
    }
    const mergeIds = new Map<number, number>();
    const merges: [number, number][] = [];
    for (let id = 256; id < tokens.length; id++) {
      const parts = applyMerges(
        Array.from(tokens[id], (byte) => byteIds[byte]),
        mergeIds,
      );
      if (parts.length !== 2) {
        throw new Error(
          `BPETokenizer.fromRanks: token ${id} is not a merge of two earlier tokens (BPE with the earlier ` +
            `merges splits its bytes into ${parts.length} parts); these ranks are not a BPE vocabulary`,
        );
      }
      mergeIds.set(pairKey(parts[0], parts[1]), id);
      merges.push([parts[0], parts[1]]);
    }
    return new BPETokenizer(merges, { pattern: options.pattern, byteIds });
  }

  static fromJSON(json: TokenizerJSON): BPETokenizer {
    if (json.kind !== "bpe") {
      throw new Error(`BPETokenizer.fromJSON: expected kind "bpe", got ${JSON.stringify(json.kind)}`);
    }
    const { pattern, merges, byteIds } = json;
    if (typeof pattern !== "string") {
      throw new Error('BPETokenizer.fromJSON: "pattern" must be the split pattern, a string');
    }
    if (!Array.isArray(merges) || !merges.every((m) => Array.isArray(m) && m.length === 2)) {
      throw new Error('BPETokenizer.fromJSON: "merges" must be a list of id pairs like [[101, 32], [256, 116]]');
    }
    if (byteIds !== undefined && !Array.isArray(byteIds)) {
      throw new Error('BPETokenizer.fromJSON: "byteIds", when present, must be a list of 256 ids');
    }
    const tokenizer = new BPETokenizer(merges as [number, number][], { pattern, byteIds });
    tokenizer.restoreSpecialTokens(json.specialTokens);
    return tokenizer;
  }

  encodeOrdinary(text: string): number[] {
    const ids: number[] = [];
    for (const chunk of splitChunks(text, this.regex)) {
      let chunkIds = this.cache.get(chunk);
      if (chunkIds === undefined) {
        chunkIds = applyMerges(
          Array.from(utf8.encode(chunk), (byte) => this.byteIds[byte]),
          this.mergeIds,
        );
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(chunk, chunkIds);
      }
      for (const id of chunkIds) ids.push(id);
    }
    return ids;
  }

  protected decodeOrdinary(ids: number[]): string {
    return decodeBytes(this.vocab, ids);
  }

  toJSON(): TokenizerJSON {
    const identity = this.byteIds.every((id, byte) => id === byte);
    return {
      kind: this.kind,
      pattern: this.pattern,
      ...(identity ? {} : { byteIds: [...this.byteIds] }),
      merges: this.merges.map(([a, b]) => [a, b]),
      specialTokens: this.specialTokens,
    };
  }
}

/**
 * Encodes one chunk: `ids` are its byte tokens. Repeatedly find the adjacent pair that was merged earliest
 * in training (lowest new id) and merge it everywhere, until no adjacent pair has a merge. Each round scans
 * the whole chunk, so the cost grows with length x rounds: nothing for words, but seconds for a single
 * 100,000-digit number (gpt-tokenizer is as slow there).
 */
function applyMerges(ids: number[], mergeIds: ReadonlyMap<number, number>): number[] {
  while (ids.length >= 2) {
    let bestId = Infinity;
    let bestAt = -1;
    for (let i = 0; i + 1 < ids.length; i++) {
      const id = mergeIds.get(pairKey(ids[i], ids[i + 1]));
      if (id !== undefined && id < bestId) {
        bestId = id;
        bestAt = i;
      }
    }
    if (bestAt < 0) break;
    ids = mergePair(ids, ids[bestAt], ids[bestAt + 1], bestId);
  }
  return ids;
}

/**
 * The training text as its distinct chunks (each as bytes) and how often each occurs, after checking the
 * arguments of a trainer (`caller` names it in errors). From here on, training works on distinct chunks, so
 * its cost grows with the number of different words in the text, not with the text's length.
 */
export function distinctChunks(
  text: string,
  vocabSize: number,
  pattern: string,
  caller: string,
): { chunks: number[][]; weights: number[] } {
  if (typeof text !== "string" || text.length === 0) {
    throw new Error(`${caller}: the training text is empty; give it text to learn merges from`);
  }
  if (!Number.isInteger(vocabSize) || vocabSize < 256 || vocabSize > PAIR_BASE) {
    throw new Error(
      `${caller}: vocabSize must be an integer from 256 (one id per byte value, no merges) to ${PAIR_BASE}, ` +
        `got ${vocabSize}`,
    );
  }
  const counts = new Map<string, number>();
  for (const chunk of splitChunks(text, compilePattern(pattern))) counts.set(chunk, (counts.get(chunk) ?? 0) + 1);
  return { chunks: [...counts.keys()].map((chunk) => Array.from(utf8.encode(chunk))), weights: [...counts.values()] };
}

/**
 * The pair with the highest count (ties: the smallest key, i.e. first id, then second id). Throws when no
 * pair is left, i.e. every chunk is already one token.
 */
export function mostFrequentPair(
  counts: ReadonlyMap<number, number>,
  step: number,
  vocabSize: number,
  caller: string,
): { pair: [number, number]; count: number } {
  let bestKey = -1;
  let bestCount = 0;
  for (const [key, count] of counts) {
    if (count > bestCount || (count === bestCount && key < bestKey)) {
      bestKey = key;
      bestCount = count;
    }
  }
  if (bestKey < 0) {
    throw new Error(
      `${caller}: after ${step} merges every chunk of the text is a single token, so there is no pair left ` +
        `to merge and vocabSize ${vocabSize} cannot be reached (at most ${256 + step} with this text). Train ` +
        "on more text or ask for a smaller vocabSize.",
    );
  }
  return { pair: [Math.floor(bestKey / PAIR_BASE), bestKey % PAIR_BASE], count: bestCount };
}

/** `ids` with every occurrence of the pair (a, b), scanning left to right, replaced by `id`. */
export function mergePair(ids: readonly number[], a: number, b: number, id: number): number[] {
  const merged: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === a && ids[i + 1] === b) {
      merged.push(id);
      i++;
    } else {
      merged.push(ids[i]);
    }
  }
  return merged;
}

/** The chunks the pattern cuts `text` into, checking that they cover all of it. */
function splitChunks(text: string, regex: RegExp): string[] {
  const chunks: string[] = [];
  let end = 0;
  for (const match of text.matchAll(regex)) {
    if (match.index !== end) break;
    chunks.push(match[0]);
    end += match[0].length;
  }
  if (end !== text.length) {
    throw new Error(
      `BPE split pattern skips ${JSON.stringify(text.slice(end, end + 20))}: a pattern must match every ` +
        "character of the text, or that text would silently disappear from the encoding",
    );
  }
  return chunks;
}

function compilePattern(pattern: string): RegExp {
  try {
    return new RegExp(pattern, "gu");
  } catch (error) {
    const reason = (error as Error).message;
    throw new Error(`BPE split pattern ${JSON.stringify(pattern)} is not a valid regular expression: ${reason}`);
  }
}

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(a.length + b.length);
  bytes.set(a);
  bytes.set(b, a.length);
  return bytes;
}
