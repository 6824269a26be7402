/**
 * Exercise 01-bpe-merge · reference solution: byte-level BPE training, the minbpe way.
 */
import { GPT2_PATTERN } from "gpt-course";

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
  for (let i = 0; i + 1 < ids.length; i++) {
    const key = pairKey(ids[i] as number, ids[i + 1] as number);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** `ids` with every occurrence of `pair`, scanning left to right, replaced by the single id `newId`. */
export function mergePair(ids: readonly number[], pair: readonly [number, number], newId: number): number[] {
  const [a, b] = pair;
  const merged: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === a && ids[i + 1] === b) {
      merged.push(newId);
      i++; // the pair's second id is consumed too
    } else {
      merged.push(ids[i] as number);
    }
  }
  return merged;
}

/**
 * Learns `vocabSize - 256` merges from `text`. Each step merges the most frequent pair (counted inside
 * chunks only); a tie goes to the pair with the smallest first id, then the smallest second id.
 * Returns the merges in order: merge i created id 256 + i.
 */
export function trainBPE(text: string, vocabSize: number): Array<[number, number]> {
  const utf8 = new TextEncoder();
  // Every chunk starts as its UTF-8 bytes: ids 0..255 are the 256 byte values.
  const chunks = splitIntoChunks(text).map((chunk) => Array.from(utf8.encode(chunk)));
  const merges: Array<[number, number]> = [];
  for (let newId = 256; newId < vocabSize; newId++) {
    // Count pairs chunk by chunk, so no pair ever spans two chunks (" dog" and "." stay apart).
    const counts = new Map<string, number>();
    for (const chunk of chunks) countPairs(chunk, counts);
    let best: [number, number] | undefined;
    let bestCount = 0;
    for (const [key, count] of counts) {
      const [a, b] = key.split(",").map(Number) as [number, number];
      const better =
        count > bestCount ||
        (count === bestCount && best !== undefined && (a < best[0] || (a === best[0] && b < best[1])));
      if (better) {
        best = [a, b];
        bestCount = count;
      }
    }
    if (best === undefined) throw new Error(`trainBPE: no pair left to merge after ${merges.length} merges`);
    const pair = best;
    for (let c = 0; c < chunks.length; c++) chunks[c] = mergePair(chunks[c] as number[], pair, newId);
    merges.push(pair);
  }
  return merges;
}
