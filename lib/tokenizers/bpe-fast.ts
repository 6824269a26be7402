/**
 * BPE training made fast: exactly the merges of `BPETokenizer.train` (tests/tokenizers.test.ts checks them
 * pair by pair), about 20 times faster on the course's corpus for a vocabulary of a couple of thousand tokens.
 *
 * The plain loop recounts every pair of every chunk at each merge, although one merge changes only the
 * chunks that contain the merged pair, a small share of them once the common pairs are gone. So:
 * - count the pairs once, and remember which chunks contain each pair (`pairChunks`);
 * - at a merge, visit only the chunks that contain the pair: take their pairs out of the counts, merge,
 *   and count their new pairs back in.
 * Picking the most frequent pair still scans all counts, as in the plain loop (a heap would be faster still,
 * but it is the recounting that dominates).
 */
import {
  BPETokenizer,
  concatBytes,
  distinctChunks,
  GPT2_PATTERN,
  mergePair,
  mostFrequentPair,
  pairKey,
  type TrainOptions,
} from "./bpe.js";
import { decodeBytes } from "./tokenizer.js";

/** Learns the same `vocabSize - 256` merges as `BPETokenizer.train(text, vocabSize, options)`, faster. */
export function trainBPEFast(text: string, vocabSize: number, options: TrainOptions = {}): BPETokenizer {
  const pattern = options.pattern ?? GPT2_PATTERN;
  const { chunks, weights } = distinctChunks(text, vocabSize, pattern, "trainBPEFast");

  // pairCounts: how often each adjacent pair occurs, summed over chunks. pairChunks: which chunks contain
  // it (possibly a few that no longer do: entries are only added, which is cheaper and harmless).
  const pairCounts = new Map<number, number>();
  const pairChunks = new Map<number, Set<number>>();
  const countPairs = (c: number, sign: 1 | -1): void => {
    const ids = chunks[c];
    for (let i = 0; i + 1 < ids.length; i++) {
      const key = pairKey(ids[i], ids[i + 1]);
      const count = (pairCounts.get(key) ?? 0) + sign * weights[c];
      if (count === 0) {
        pairCounts.delete(key);
        pairChunks.delete(key);
        continue;
      }
      pairCounts.set(key, count);
      if (sign === 1) {
        const set = pairChunks.get(key) ?? new Set<number>();
        set.add(c);
        pairChunks.set(key, set);
      }
    }
  };
  chunks.forEach((_, c) => countPairs(c, 1));

  const vocab: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  const merges: [number, number][] = [];
  for (let step = 0; step < vocabSize - 256; step++) {
    const { pair, count } = mostFrequentPair(pairCounts, step, vocabSize, "trainBPEFast");
    const [a, b] = pair;
    const id = 256 + step;
    // Only the chunks that contain the pair change: take their pairs out of the counts, merge, count again.
    for (const c of [...(pairChunks.get(pairKey(a, b)) as Set<number>)]) {
      countPairs(c, -1);
      chunks[c] = mergePair(chunks[c], a, b, id);
      countPairs(c, 1);
    }
    merges.push(pair);
    vocab.push(concatBytes(vocab[a], vocab[b]));
    options.onMerge?.({ step, pair, id, count, token: decodeBytes(vocab, [id]) });
  }
  return new BPETokenizer(merges, { pattern });
}
