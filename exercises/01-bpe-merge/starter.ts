/**
 * Exercise 01-bpe-merge: one BPE merge step, then the training loop. Read README.md in this folder, fill in
 * the TODOs, then check your work with `npm run exercise -- 01-bpe-merge`.
 */
import { GPT2_PATTERN } from "gpt-course";
import { todo } from "../harness/check.js";

/** A Map key for the pair (a, b): JavaScript Maps compare arrays by identity, so [a, b] cannot be a key. */
export function pairKey(a: number, b: number): string {
  return `${a},${b}`;
}

/** GPT-2's split of a text into chunks (words with their leading space, numbers, punctuation, spaces). */
export function splitIntoChunks(text: string): string[] {
  return text.match(new RegExp(GPT2_PATTERN, "gu")) ?? [];
}

/**
 * Adds how often each adjacent pair occurs in `ids` to `counts` (a fresh Map by default) and returns it.
 * Pairs overlap: [7, 7, 7] holds the pair (7, 7) twice.
 */
export function countPairs(ids: readonly number[], counts: Map<string, number> = new Map()): Map<string, number> {
  // TODO: for every i, add 1 to the count of the pair (ids[i], ids[i + 1]), keyed by pairKey.
  return todo("countPairs", ids, counts);
}

/** `ids` with every occurrence of `pair`, scanning left to right, replaced by the single id `newId`. */
export function mergePair(ids: readonly number[], pair: readonly [number, number], newId: number): number[] {
  // TODO: walk left to right; where ids[i], ids[i + 1] is the pair, emit newId and skip both.
  return todo("mergePair", ids, pair, newId);
}

/**
 * Learns `vocabSize - 256` merges from `text`. Each step merges the most frequent pair (counted inside
 * chunks only); a tie goes to the pair with the smallest first id, then the smallest second id.
 * Returns the merges in order: merge i created id 256 + i.
 */
export function trainBPE(text: string, vocabSize: number): Array<[number, number]> {
  // TODO: 1. split the text with splitIntoChunks and turn each chunk into its UTF-8 bytes (TextEncoder);
  //       2. for each new id from 256 to vocabSize - 1: count the pairs of all chunks, pick the best pair
  //          (most frequent; ties: smallest first id, then smallest second id), replace it by the new id
  //          in every chunk, and record it.
  return todo("trainBPE", text, vocabSize);
}
