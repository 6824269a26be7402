/**
 * Checks for 01-bpe-merge: pair counting and merging against a direct computation, training against
 * gpt-course's `BPETokenizer.train` on random text (random words over a random alphabet that includes
 * multi-byte letters).
 */
import { BPETokenizer, GPT2_PATTERN, type Random } from "gpt-course";
import { type Conforms, defineExercise, expectEqualArrays, fail, randomInt } from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** Random ids with deliberate runs (7, 7, 7) and repeats, so overlapping pairs occur. */
function randomIds(random: Random): number[] {
  const ids: number[] = [];
  const length = randomInt(random, 20, 60);
  while (ids.length < length) {
    const id = randomInt(random, 0, 6);
    const run = random.next() < 0.2 ? randomInt(random, 2, 4) : 1;
    for (let i = 0; i < run; i++) ids.push(id);
  }
  return ids;
}

/** Random words over a small random alphabet (with a two-byte letter), so pairs repeat a lot. */
function randomText(random: Random): string {
  const letters = random.shuffle([..."abcdefghijklmnopqrstuvwxyzéøü"]).slice(0, randomInt(random, 5, 9));
  const words = Array.from({ length: randomInt(random, 40, 80) }, () =>
    Array.from({ length: randomInt(random, 1, 6) }, () => letters[random.int(letters.length)]).join(""),
  );
  const parts: string[] = [];
  for (let i = 0; i < randomInt(random, 300, 500); i++) {
    parts.push(words[random.int(words.length)] as string);
    const r = random.next();
    parts.push(r < 0.05 ? ".\n" : r < 0.1 ? ", " : r < 0.12 ? "!! " : " ");
  }
  return parts.join("");
}

/** `ids` with every occurrence of the pair replaced by `newId`, left to right (the reference for mergePair). */
function directMerge(ids: readonly number[], [a, b]: readonly [number, number], newId: number): number[] {
  const merged: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === a && ids[i + 1] === b) {
      merged.push(newId);
      i++;
    } else {
      merged.push(ids[i] as number);
    }
  }
  return merged;
}

/**
 * Why the learner's merge `step` differs from gpt-course's, when it can tell: replays the first `step` merges
 * (on which both agree) chunk by chunk and compares how often the two pairs occur at that point.
 */
function diagnoseMerge(
  text: string,
  merges: readonly (readonly [number, number])[],
  step: number,
  mine: unknown,
): string | undefined {
  if (!Array.isArray(mine) || mine.length !== 2) return "Each merge is a pair [a, b] of ids.";
  const utf8 = new TextEncoder();
  let chunks = (text.match(new RegExp(GPT2_PATTERN, "gu")) ?? []).map((chunk) => Array.from(utf8.encode(chunk)));
  merges.slice(0, step).forEach((pair, i) => (chunks = chunks.map((ids) => directMerge(ids, pair, 256 + i))));
  const counts = new Map<string, number>();
  for (const ids of chunks)
    for (const [key, count] of directCounts(ids)) counts.set(key, (counts.get(key) ?? 0) + count);
  const theirs = merges[step] as readonly [number, number];
  const mineCount = counts.get(`${mine[0]},${mine[1]}`) ?? 0;
  const theirCount = counts.get(`${theirs[0]},${theirs[1]}`) ?? 0;
  if (mineCount === 0) {
    return (
      `With the first ${step} merge${step === 1 ? "" : "s"} applied, your pair (${mine[0]}, ${mine[1]}) occurs in no chunk. ` +
      "Count pairs chunk by chunk (so no pair spans two chunks), and after each merge replace the pair in every " +
      "chunk (check mergePair too)."
    );
  }
  if (mineCount === theirCount) {
    return (
      `Both pairs occur ${theirCount} times at this point: a tie. Ties go to the pair with the smallest first id, ` +
      "then the smallest second id."
    );
  }
  if (mineCount < theirCount) {
    return `At this point (${theirs[0]}, ${theirs[1]}) occurs ${theirCount} times and yours only ${mineCount}: merge the most frequent pair.`;
  }
  return undefined;
}

function directCounts(ids: readonly number[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + 1 < ids.length; i++)
    counts.set(`${ids[i]},${ids[i + 1]}`, (counts.get(`${ids[i]},${ids[i + 1]}`) ?? 0) + 1);
  return counts;
}

function expectSameCounts(actual: unknown, expected: Map<string, number>, what: string): void {
  if (!(actual instanceof Map)) fail(`${what} should return a Map from pairKey(a, b) to a count.`);
  for (const [key, count] of expected) {
    if (actual.get(key) !== count) {
      fail(
        `${what}: the pair (${key}) should have count ${count}, yours has ${actual.get(key)}.`,
        count > 1 && /^(\d+),\1$/.test(key)
          ? "Pairs overlap: [7, 7, 7] contains (7, 7) twice, at i = 0 and i = 1. Count every i."
          : undefined,
      );
    }
  }
  for (const key of actual.keys())
    if (!expected.has(key)) fail(`${what}: the pair (${key}) does not occur, but your Map has it.`);
}

export default defineExercise<Exports>({
  title: "One BPE merge step and the training loop",
  teaches: "pair counts, merging a pair, the greedy BPE training loop and its tie-break",
  checks: [
    {
      name: "countPairs counts every adjacent pair (overlaps too) and adds to a given Map",
      hint: "Loop i from 0 to ids.length - 2, key = pairKey(ids[i], ids[i + 1]), counts.set(key, (counts.get(key) ?? 0) + 1).",
      run({ countPairs }, random) {
        const ids = randomIds(random);
        expectSameCounts(countPairs(ids), directCounts(ids), `countPairs([${ids.slice(0, 6).join(", ")}, ...])`);
        // Training counts pairs chunk by chunk into one Map: the second call must add to the first's counts.
        const more = randomIds(random);
        const total = directCounts(ids);
        for (const [key, count] of directCounts(more)) total.set(key, (total.get(key) ?? 0) + count);
        const given = countPairs(ids, new Map());
        const returned = countPairs(more, given);
        if (returned !== given) fail("countPairs(ids, counts) should add to `counts` and return that same Map.");
        expectSameCounts(returned, total, "countPairs(more, counts) after countPairs(ids, counts)");
      },
    },
    {
      name: "mergePair replaces every occurrence of the pair, left to right",
      hint:
        "Build a new array. At position i, if ids[i] and ids[i + 1] are the pair, push newId and skip one extra " +
        "position (i++); otherwise push ids[i]. [7, 7, 7] with the pair (7, 7) becomes [new, 7].",
      run({ mergePair }, random) {
        for (let trial = 0; trial < 5; trial++) {
          const ids = randomIds(random);
          // A pair that occurs: taken from the ids themselves (sometimes a run, to test overlaps).
          const at = random.int(ids.length - 1);
          const pair: [number, number] = [ids[at] as number, ids[at + 1] as number];
          const newId = 256 + random.int(100);
          const expected = directMerge(ids, pair, newId);
          const input = [...ids];
          const merged = mergePair(ids, pair, newId);
          expectEqualArrays(
            ids,
            input,
            "mergePair must not change its input: the ids",
            "Return a new array; leave `ids` as it was.",
          );
          expectEqualArrays(merged, expected, `mergePair([${ids.join(", ")}], [${pair.join(", ")}], ${newId})`);
        }
      },
    },
    {
      name: "trainBPE's first merge is the text's most frequent pair",
      hint:
        "Split the text with splitIntoChunks, encode each chunk to UTF-8 bytes with new TextEncoder().encode, " +
        "count the pairs of all chunks into one Map, and take the pair with the highest count.",
      run({ trainBPE }, random) {
        const text = randomText(random);
        const [a, b] = BPETokenizer.train(text, 257).merges[0] as readonly [number, number];
        const merges = trainBPE(text, 257);
        if (!Array.isArray(merges) || merges.length !== 1) {
          fail(`trainBPE(text, 257) should return exactly one merge (ids 256 .. 256), got ${JSON.stringify(merges)}.`);
        }
        const bytes = (id: number): string => JSON.stringify(new TextDecoder().decode(Uint8Array.of(id)));
        expectEqualArrays(merges[0], [a, b], `the first merge (the most frequent pair is ${bytes(a)} + ${bytes(b)})`);
      },
    },
    {
      name: "trainBPE learns the same merges as gpt-course's BPETokenizer.train",
      hint:
        "After choosing a pair, replace it by the new id in every chunk before counting again. Ties: the pair " +
        "with the smallest first id wins, then the smallest second id. Count pairs only inside chunks.",
      run({ trainBPE }, random) {
        const text = randomText(random);
        const vocabSize = 256 + randomInt(random, 20, 40);
        const expected = BPETokenizer.train(text, vocabSize).merges;
        const merges = trainBPE(text, vocabSize);
        if (!Array.isArray(merges)) fail("trainBPE should return an array of [a, b] pairs.");
        const reference = new BPETokenizer(expected);
        for (let i = 0; i < expected.length; i++) {
          const mine = merges[i];
          const theirs = expected[i] as readonly [number, number];
          if (!Array.isArray(mine) || mine[0] !== theirs[0] || mine[1] !== theirs[1]) {
            const token = JSON.stringify(reference.decode([256 + i]));
            fail(
              `merge ${i} (new id ${256 + i}) is ${JSON.stringify(mine)}, expected [${theirs.join(",")}] (the token ${token}).`,
              diagnoseMerge(text, expected, i, mine),
            );
          }
        }
        if (merges.length !== expected.length) {
          fail(
            `trainBPE(text, ${vocabSize}) returned ${merges.length} merges, expected ${vocabSize} - 256 = ${expected.length}.`,
          );
        }
      },
    },
  ],
});
