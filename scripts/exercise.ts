/**
 * `npm run exercise`: runs the automatic checks of the classroom exercises (exercises/, see its README).
 *
 *   npm run exercise -- 02-causal-mask        check your work: exercises/02-causal-mask/starter.ts
 *   npm run exercise -- causal-mask           any unique part of the name works too
 *   npm run exercise -- kv --file my-kv.ts    check another file (e.g. your own copy of the starter)
 *   npm run exercise -- --all                 check your work on every exercise
 *   npm run exercise -- --solutions           teacher: check every reference solution (all must pass)
 *   npm run exercise -- --solutions kv        teacher: check one solution
 *   npm run exercise -- --list                the exercises, by chapter
 *
 * Options: --seed N replays the random inputs of an earlier run (each run prints its seed); --timings shows
 * how long each check took. The exit status is 0 when every check passed, 1 otherwise.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  type ExerciseInfo,
  type ExerciseReport,
  findExercise,
  formatReport,
  listExercises,
  loadExercise,
  passedAll,
  runExercise,
} from "../exercises/harness/runner.js";

const usage = `Usage:
  npm run exercise -- <name>              check your work on one exercise (its starter.ts)
  npm run exercise -- <name> --file F     check the file F instead (e.g. a copy of the starter)
  npm run exercise -- --all               check your work on every exercise
  npm run exercise -- --solutions [name]  teacher: check the reference solutions (all of them, or one)
  npm run exercise -- --list              list the exercises
Options: --seed N (replay the random inputs of an earlier run), --timings (time each check)`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: {
      all: { type: "boolean", default: false },
      solutions: { type: "boolean", default: false },
      list: { type: "boolean", default: false },
      file: { type: "string" },
      seed: { type: "string" },
      timings: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (values.list) {
    for (const info of listExercises()) {
      const { title, teaches } = await loadExercise(info);
      console.log(`${info.name.padEnd(28)} ${title} — ${teaches}`);
    }
    return 0;
  }
  if (positionals.length > 1) throw new Error(`one exercise at a time, got ${positionals.join(", ")}\n\n${usage}`);
  const [name] = positionals;
  if (values.all && name !== undefined) throw new Error(`--all runs every exercise: leave out "${name}"`);
  if (!values.all && !values.solutions && name === undefined) throw new Error(`which exercise?\n\n${usage}`);
  if (values.file !== undefined && (name === undefined || values.solutions)) {
    throw new Error(
      "--file checks one file: give the exercise's name, e.g. `npm run exercise -- kv-cache --file my-kv.ts`",
    );
  }
  let seed: number | undefined;
  if (values.seed !== undefined) {
    seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a whole number ≥ 0, got "${values.seed}"`);
  }

  const exercises: ExerciseInfo[] = name !== undefined ? [findExercise(name)] : listExercises();
  const color = process.stdout.isTTY && !process.env.NO_COLOR;
  const reports: ExerciseReport[] = [];
  for (const info of exercises) {
    const file = values.solutions ? resolve(info.dir, "solution.ts") : values.file && resolve(values.file);
    const report = await runExercise(info, { file: file || undefined, seed });
    reports.push(report);
    console.log(formatReport(report, { color, timings: values.timings }));
    console.log();
  }
  if (reports.length > 1) {
    const done = reports.filter(passedAll);
    console.log(`${done.length} of ${reports.length} exercises pass all their checks.`);
    for (const report of reports) {
      const passed = report.results.filter((r) => r.passed).length;
      const mark = passedAll(report) ? "✓" : "✗";
      console.log(`  ${mark} ${report.exercise.name.padEnd(28)} ${passed}/${report.results.length}`);
    }
  }
  return reports.every(passedAll) ? 0 : 1;
}

main().then(
  (status) => process.exit(status),
  (error: Error) => {
    console.error(`error: ${process.env.DEBUG ? error.stack : error.message}`);
    process.exit(2);
  },
);
