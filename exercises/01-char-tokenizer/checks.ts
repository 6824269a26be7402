/**
 * Checks for 01-char-tokenizer: the learner's tokenizer against gpt-course's `CharTokenizer` on random text
 * that mixes ASCII, accented letters, CJK, full-width punctuation and emoji (characters outside the Basic
 * Multilingual Plane, two UTF-16 units each).
 */
import { CharTokenizer as LibCharTokenizer, type Random } from "gpt-course";
import { type Conforms, defineExercise, expectEqualArrays, expectThrows, fail, randomInt } from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

const POOL = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJ .,;!?'\n0123456789éèßñüøçåæœ中文字日本語！？＠😀🚀🎉🐍👋"];
const EMOJI = [..."😀🚀🎉🐍👋"];
const FULL_WIDTH = [..."！？＠"];

/** A random text over a random alphabet that always holds an emoji and a full-width sign (the tricky ones). */
function randomText(random: Random): { text: string; alphabet: string[] } {
  const alphabet = new Set<string>([EMOJI[random.int(EMOJI.length)] as string, FULL_WIDTH[random.int(3)] as string]);
  const size = randomInt(random, 8, 25);
  while (alphabet.size < size) alphabet.add(POOL[random.int(POOL.length)] as string);
  const letters = [...alphabet];
  const text = Array.from({ length: randomInt(random, 60, 200) }, () => letters[random.int(letters.length)]).join("");
  // Every letter of the alphabet occurs at least once, so the vocabulary is exactly the alphabet.
  return { text: text + random.shuffle([...letters]).join(""), alphabet: letters };
}

/** A second text over the same characters, different from the one the tokenizer was built from. */
function textOver(random: Random, alphabet: string[]): string {
  return Array.from({ length: randomInt(random, 20, 80) }, () => alphabet[random.int(alphabet.length)]).join("");
}

export default defineExercise<Exports>({
  title: "A character tokenizer",
  teaches: "vocabulary building, encode/decode, code points vs UTF-16 units",
  checks: [
    {
      name: "the vocabulary is the text's distinct characters, sorted by code point",
      hint:
        "Collect the characters with `new Set(text)` (or for...of), which walks code points, and sort with " +
        "(a, b) => a.codePointAt(0)! - b.codePointAt(0)!.",
      run({ CharTokenizer }, random) {
        const { text } = randomText(random);
        const expected = LibCharTokenizer.fromText(text).chars;
        const chars = new CharTokenizer(text).chars;
        if (
          Array.isArray(chars) &&
          chars.some((c) => typeof c === "string" && /[\uD800-\uDFFF]/.test(c) && [...c].length === c.length)
        ) {
          fail(
            "your vocabulary contains half an emoji (a lone UTF-16 surrogate).",
            '`text[i]`, `text.split("")` and `text.length` count UTF-16 units; an emoji is two of them. Iterate ' +
              "with for...of or spread [...text], which yield whole code points.",
          );
        }
        if (
          Array.isArray(chars) &&
          chars.length === expected.length &&
          [...chars].sort().join() === [...expected].sort().join()
        ) {
          expectEqualArrays(
            chars,
            expected,
            "the order of your vocabulary",
            "The characters are right but not their order. The default sort() compares UTF-16 units, which puts " +
              'emoji before full-width signs like "！" (U+FF01); compare code points instead.',
          );
        }
        expectEqualArrays(chars, expected, "the vocabulary (chars)");
        const tokenizer = new CharTokenizer(text);
        if (tokenizer.vocabSize !== expected.length) {
          fail(`vocabSize is ${tokenizer.vocabSize}, expected ${expected.length} (the number of distinct characters).`);
        }
      },
    },
    {
      name: "encode gives gpt-course's ids on random text",
      hint: "A character's id is its index in `chars`. Walk the text with for...of so an emoji counts as one character.",
      run({ CharTokenizer }, random) {
        const { text, alphabet } = randomText(random);
        const mine = new CharTokenizer(text);
        const reference = LibCharTokenizer.fromText(text);
        const other = textOver(random, alphabet);
        expectEqualArrays(
          mine.encode(other),
          reference.encode(other),
          `encode(${JSON.stringify(other.slice(0, 30))}...)`,
        );
      },
    },
    {
      name: "decode turns ids back into the text they came from",
      hint: "decode is the inverse of encode: map each id to chars[id] and join the pieces.",
      run({ CharTokenizer }, random) {
        const { text, alphabet } = randomText(random);
        const mine = new CharTokenizer(text);
        const reference = LibCharTokenizer.fromText(text);
        const ids = Array.from({ length: randomInt(random, 10, 60) }, () => random.int(alphabet.length));
        const decoded = mine.decode(ids);
        const expected = reference.decode(ids);
        if (decoded !== expected) {
          fail(
            `decode([${ids.slice(0, 8).join(", ")}, ...]) gave ${JSON.stringify(decoded)}, expected ${JSON.stringify(expected)}.`,
          );
        }
        const other = textOver(random, alphabet);
        const roundTrip = mine.decode(reference.encode(other));
        if (roundTrip !== other)
          fail(`decode(encode(text)) gave ${JSON.stringify(roundTrip)} for ${JSON.stringify(other)}.`);
      },
    },
    {
      name: "encode throws an error for a character outside the vocabulary",
      hint:
        "When the Map has no id for a character, throw an Error that names it: silently skipping it or " +
        "returning undefined/-1 would feed the model garbage.",
      run({ CharTokenizer }, random) {
        const { text } = randomText(random);
        const tokenizer = new CharTokenizer(text.replace(/z/g, ""));
        const known = [...text]
          .filter((c) => c !== "z")
          .slice(0, 5)
          .join("");
        const error = expectThrows(
          () => tokenizer.encode(`${known}z`),
          'encode of a text with an unknown character "z"',
        );
        if (!error.message.includes("z")) {
          fail(`the error message ${JSON.stringify(error.message)} should name the unknown character "z".`);
        }
      },
    },
  ],
});
