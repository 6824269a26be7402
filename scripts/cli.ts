import { parseArgs, type ParseArgsConfig } from "node:util";
import { type BackendInfo, initBackend, type Trainer } from "gpt-course";

/**
 * Shared by the command-line scripts: argument parsing that turns mistakes into one clear line (not a
 * stack trace), and backend start-up that says which backend runs.
 */
export function parseCommandLine<const T extends NonNullable<ParseArgsConfig["options"]>>(usage: string, options: T) {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage);
    process.exit(0);
  }
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    fail(`${(error as Error).message}\n\n${usage}`);
  }
}

/** A positive integer from a command-line flag, or a clear error. */
export function integerFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) fail(`--${name} must be a whole number ≥ 0, got "${value}".`);
  return parsed;
}

export function numberFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) fail(`--${name} must be a number, got "${value}".`);
  return parsed;
}

export async function startBackend(): Promise<BackendInfo> {
  const backend = await initBackend();
  console.error(`backend: ${backend.name} — ${backend.description}`);
  return backend;
}

/** Prints the message and exits with status 1. */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  process.exit(1);
}

/** Runs a script's main function; an error ends the process with its message instead of a stack trace. */
export function run(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: Error) => fail(process.env.DEBUG ? String(error.stack) : error.message),
  );
}

/**
 * Trains until step `last`, saving with `save()` every `saveEvery` steps (0: only at the end) and once more
 * when stopped. The first Ctrl-C finishes the current step and saves; a second one quits without saving.
 * Shared by `npm run pretrain` and `npm run finetune`.
 */
export async function trainWithCheckpoints(
  trainer: Trainer,
  last: number,
  saveEvery: number,
  save: () => Promise<void>,
): Promise<void> {
  const stop = new AbortController();
  process.once("SIGINT", () => {
    console.error("\ninterrupted: finishing this step and saving a checkpoint (Ctrl-C again to quit without saving)");
    stop.abort();
    process.once("SIGINT", () => process.exit(130));
  });
  while (trainer.step < last && !stop.signal.aborted) {
    await trainer.train({
      steps: Math.min(saveEvery || last, last - trainer.step),
      signal: stop.signal,
      onEval: (result) =>
        console.error(
          `\nstep ${result.step}: train loss ${result.train.toFixed(4)}, validation loss ${result.validation.toFixed(4)}`,
        ),
    });
    await save();
  }
}
