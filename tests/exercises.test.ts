/**
 * The classroom exercises (exercises/, see its README):
 *   - every reference solution passes all its checks, with several seeds (the checks use random inputs);
 *   - every untouched starter fails every check, and fails it because of a TODO, not a crash: a check that
 *     passes on a TODO stub checks nothing, and a starter that crashes teaches nothing;
 *   - every exercise folder is complete, listed in the README, and pointed to by its chapter's notebook.
 *
 * Learners edit starter.ts in place. A starter with local changes (a learner's work in progress) is not
 * judged here; in CI the checkout is clean, so the committed starters always are.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "gpt-course";
import {
  EXERCISE_FILES,
  type ExerciseReport,
  exercisesDir,
  formatReport,
  listExercises,
  loadExercise,
  runExercise,
} from "../exercises/harness/runner.js";

const repo = resolve(__dirname, "..");
const exercises = listExercises();
/** Seeds the solutions are checked with: each gives every check different random inputs. */
const SOLUTION_SEEDS = [1, 2, 3];

beforeAll(async () => {
  await initBackend();
});

/** Starters with uncommitted changes, per `git status` (none when git is unavailable). */
function locallyModified(): Set<string> {
  try {
    const status = execFileSync("git", ["status", "--porcelain", "--", "exercises"], { cwd: repo, encoding: "utf8" });
    return new Set(
      status
        .split("\n")
        .filter((line) => /^( M|M |MM|AM| D)/.test(line)) // modified or deleted, not merely untracked
        .map((line) => line.slice(3).trim()),
    );
  } catch {
    return new Set();
  }
}
const modified = locallyModified();

const failures = (report: ExerciseReport): string[] => report.results.filter((r) => !r.passed).map((r) => r.name);

describe("exercises", () => {
  it("there is at least one exercise for every chapter from 01 to 08", () => {
    const chapters = new Set(exercises.map((e) => e.chapter));
    const missing = ["01", "02", "03", "04", "05", "06", "07", "08"].filter((c) => !chapters.has(c));
    expect(missing, "chapters without an exercise").toEqual([]);
  });

  it.each(exercises.map((e) => [e.name, e] as const))("%s has every file and named checks", async (_, exercise) => {
    for (const file of EXERCISE_FILES)
      expect(existsSync(join(exercise.dir, file)), `${exercise.name}/${file}`).toBe(true);
    const { checks, title, teaches } = await loadExercise(exercise);
    expect(title.length).toBeGreaterThan(0);
    expect(teaches.length).toBeGreaterThan(0);
    expect(checks.length).toBeGreaterThanOrEqual(3);
    expect(new Set(checks.map((c) => c.name)).size, "check names must be unique").toBe(checks.length);
  });

  it.each(exercises.map((e) => [e.name, e] as const))("%s: the solution passes every check", async (_, exercise) => {
    for (const seed of SOLUTION_SEEDS) {
      const report = await runExercise(exercise, { file: join(exercise.dir, "solution.ts"), seed });
      expect(failures(report), formatReport(report)).toEqual([]);
    }
  });

  // A starter with local changes (a learner's work?) is reported as skipped, not as passed: CI judges the
  // committed starters.
  const isModified = (name: string) => modified.has(`exercises/${name}/starter.ts`);
  it.skip.each(exercises.filter((e) => isModified(e.name)).map((e) => [e.name]))(
    "%s: the starter has local changes, not judged",
    () => {},
  );
  it.each(exercises.filter((e) => !isModified(e.name)).map((e) => [e.name, e] as const))(
    "%s: the untouched starter fails every check on a TODO",
    async (_, exercise) => {
      const report = await runExercise(exercise, { seed: 1 });
      expect(report.loadError, "the starter must load (it compiles and runs until a TODO)").toBeUndefined();
      const passing = report.results.filter((r) => r.passed).map((r) => r.name);
      expect(passing, `checks that pass on the starter's TODO stubs:\n${formatReport(report)}`).toEqual([]);
      const notTodo = report.results.filter((r) => !r.todo).map((r) => `${r.name}: ${r.message}`);
      expect(notTodo, "starter failures that do not come from a TODO").toEqual([]);
    },
  );

  it("the exercises README lists every exercise", () => {
    const readme = readFileSync(join(exercisesDir, "README.md"), "utf8");
    const unlisted = exercises.filter((e) => !readme.includes(`(${e.name}/)`)).map((e) => e.name);
    expect(unlisted, "exercises missing from the README's table (link them as [name](name/))").toEqual([]);
  });

  it("each chapter's notebook points to its exercises", () => {
    const notebooksDir = join(repo, "notebooks");
    const notebooks = existsSync(notebooksDir)
      ? readdirSync(notebooksDir).filter((f) => /^\d\d_.*\.ipynb$/.test(f))
      : [];
    const missing: string[] = [];
    for (const notebook of notebooks) {
      const text = readFileSync(join(notebooksDir, notebook), "utf8");
      for (const exercise of exercises.filter((e) => e.chapter === notebook.slice(0, 2))) {
        if (!text.includes(`exercises/${exercise.name}`)) missing.push(`${notebook} → exercises/${exercise.name}`);
      }
    }
    expect(missing, "notebooks that do not mention their chapter's exercises").toEqual([]);
  });
});
