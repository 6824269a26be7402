/**
 * Finds the exercises, runs an exercise's checks on a file (the learner's starter.ts or the reference
 * solution.ts) and formats the results. Used by `npm run exercise` (scripts/exercise.ts) and by the CI
 * test (tests/exercises.test.ts), so both judge a file the same way.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { initBackend, Random, tf } from "gpt-course";
import { CheckFailure, type Exercise, isTodo } from "./check.js";

/** The exercises folder (this file lives in exercises/harness/). */
export const exercisesDir = resolve(__dirname, "..");
const repoDir = resolve(exercisesDir, "..");

/** Files every exercise folder has. */
export const EXERCISE_FILES = ["README.md", "starter.ts", "solution.ts", "checks.ts"] as const;

export interface ExerciseInfo {
  /** The folder name, e.g. "02-causal-mask". */
  name: string;
  /** The chapter (notebook number) it belongs to, e.g. "02". */
  chapter: string;
  dir: string;
}

/**
 * Every exercise: the folders named like "NN-some-name", in the order of the table in exercises/README.md (the
 * course's order: the character tokenizer before BPE), then any unlisted ones by name.
 */
export function listExercises(): ExerciseInfo[] {
  const readmePath = join(exercisesDir, "README.md");
  const readme = existsSync(readmePath) ? readFileSync(readmePath, "utf8") : "";
  const position = (name: string): number => {
    const at = readme.indexOf(`(${name}/)`);
    return at < 0 ? Infinity : at;
  };
  return readdirSync(exercisesDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && /^\d\d-[a-z0-9-]+$/.test(entry.name))
    .map((entry) => ({ name: entry.name, chapter: entry.name.slice(0, 2), dir: join(exercisesDir, entry.name) }))
    .sort(
      (a, b) =>
        a.chapter.localeCompare(b.chapter) || position(a.name) - position(b.name) || a.name.localeCompare(b.name),
    );
}

/**
 * The exercise a learner means: an exact folder name, or a piece of one that matches a single exercise
 * ("causal-mask", "02-causal", "kv").
 */
export function findExercise(query: string): ExerciseInfo {
  const all = listExercises();
  const exact = all.find((e) => e.name === query);
  if (exact) return exact;
  const matches = all.filter((e) => e.name.includes(query));
  if (matches.length === 1) return matches[0] as ExerciseInfo;
  const list = all.map((e) => `  ${e.name}`).join("\n");
  if (matches.length === 0) throw new Error(`No exercise called "${query}". The exercises are:\n${list}`);
  throw new Error(`"${query}" matches several exercises (${matches.map((e) => e.name).join(", ")}); say which one.`);
}

export async function loadExercise(info: ExerciseInfo): Promise<Exercise<unknown>> {
  const module = (await import(pathToFileURL(join(info.dir, "checks.ts")).href)) as { default?: Exercise<unknown> };
  if (!module.default?.checks) throw new Error(`${info.name}/checks.ts must \`export default defineExercise({...})\`.`);
  return module.default;
}

export interface CheckResult {
  name: string;
  passed: boolean;
  /** Why it failed. */
  message?: string;
  hint?: string;
  /** The failure came from a part still marked TODO. */
  todo?: boolean;
  milliseconds: number;
}

export interface ExerciseReport {
  exercise: ExerciseInfo;
  title: string;
  /** The file that was checked, relative to the repository. */
  file: string;
  seed: number;
  results: CheckResult[];
  /** Set when the file could not even be loaded (syntax error, error at import time). */
  loadError?: string;
}

export const passedAll = (report: ExerciseReport): boolean =>
  report.loadError === undefined && report.results.every((r) => r.passed);

/**
 * Runs every check of `info` on `file` (default: the learner's starter.ts). Each check gets its own
 * generator, seeded from `seed` and its position, so a failing check can be replayed with the same seed.
 */
export async function runExercise(
  info: ExerciseInfo,
  options: { file?: string; seed?: number } = {},
): Promise<ExerciseReport> {
  await initBackend();
  const exercise = await loadExercise(info);
  const file = resolve(options.file ?? join(info.dir, "starter.ts"));
  const seed = options.seed ?? Math.floor(Math.random() * 1_000_000);
  const report: ExerciseReport = {
    exercise: info,
    title: exercise.title,
    file: relative(repoDir, file) || file,
    seed,
    results: [],
  };
  let exports: unknown;
  try {
    if (!existsSync(file)) throw new Error(`there is no file ${file}`);
    exports = await import(pathToFileURL(file).href);
  } catch (error) {
    report.loadError = (error as Error).message ?? String(error);
    report.results = exercise.checks.map((check) => ({
      name: check.name,
      passed: false,
      message: "the file could not be loaded (see above)",
      milliseconds: 0,
    }));
    return report;
  }
  for (const [index, check] of exercise.checks.entries()) {
    const start = performance.now();
    // Each check runs in its own tensor scope: whatever it (or the learner's code) forgets to dispose is
    // freed afterwards, so one check's leak never slows down or breaks the next.
    tf.engine().startScope();
    try {
      await check.run(exports, new Random(seed * 1009 + index));
      report.results.push({ name: check.name, passed: true, milliseconds: performance.now() - start });
    } catch (error) {
      report.results.push({
        name: check.name,
        passed: false,
        ...explain(error, check.hint),
        milliseconds: performance.now() - start,
      });
    } finally {
      tf.engine().endScope();
    }
  }
  return report;
}

/** A failure's message and hint: precise ones from `fail`, otherwise the error and the check's general hint. */
function explain(error: unknown, generalHint: string): Pick<CheckResult, "message" | "hint" | "todo"> {
  if (error instanceof CheckFailure) return { message: error.message, hint: error.hint ?? generalHint };
  if (isTodo(error)) return { message: `not done yet: ${(error as Error).message}`, hint: generalHint, todo: true };
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return { message: `your code threw ${message}`, hint: generalHint };
}

// ---------------------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------------------

export interface FormatOptions {
  color?: boolean;
  /** Also show how long each check took. */
  timings?: boolean;
}

const paint = (on: boolean, code: number, text: string): string => (on ? `\x1b[${code}m${text}\x1b[0m` : text);

/** Splits `text` into lines of at most `width` characters (words are never cut), each indented. */
function wrap(text: string, indent: string, width = 100): string {
  const lines: string[] = [];
  for (const paragraph of text.split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      if (line && indent.length + line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else {
        line = line ? `${line} ${word}` : word;
      }
    }
    lines.push(line);
  }
  return lines.map((line) => indent + line).join("\n");
}

export function formatReport(report: ExerciseReport, options: FormatOptions = {}): string {
  const color = options.color ?? false;
  const out: string[] = [];
  out.push(`${paint(color, 1, `${report.exercise.name} · ${report.title}`)}  (${report.file}, seed ${report.seed})`);
  if (report.loadError) {
    out.push(paint(color, 31, "  ✗ could not load the file:"));
    out.push(wrap(report.loadError, "      "));
  }
  for (const result of report.results) {
    const time = options.timings ? `  (${Math.round(result.milliseconds)} ms)` : "";
    if (result.passed) {
      out.push(`  ${paint(color, 32, "✓")} ${result.name}${time}`);
      continue;
    }
    out.push(`  ${paint(color, 31, "✗")} ${result.name}${time}`);
    if (result.message && !report.loadError) out.push(wrap(result.message, "      "));
    if (result.hint && !report.loadError) out.push(paint(color, 33, wrap(`hint: ${result.hint}`, "      ")));
  }
  const passed = report.results.filter((r) => r.passed).length;
  const total = report.results.length;
  const summary =
    passed === total && !report.loadError
      ? paint(color, 32, `All ${total} checks pass.`)
      : paint(color, 31, `${passed} of ${total} checks pass.`) +
        (report.results.some((r) => r.todo) ? " Parts marked TODO are not written yet." : "");
  out.push(`  ${summary}`);
  return out.join("\n");
}
