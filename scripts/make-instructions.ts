/**
 * Writes the instruction data set: data/instructions/train.jsonl and test.jsonl.
 *
 *   npm run data:instructions -- [--out dir] [--seed S]
 *
 * The generator is deterministic: the same seed writes byte-identical files.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { TASKS, defaultInstructionOptions, generateInstructions, writeConversations } from "course-data";
import { integerFlag, parseCommandLine, run } from "./cli.js";

const usage = `usage: npm run data:instructions -- [options]
  --out DIR    where to write train.jsonl and test.jsonl (default data/instructions)
  --seed S     seed of the generator (default ${defaultInstructionOptions.seed})`;

run(async () => {
  const flags = parseCommandLine(usage, { out: { type: "string" }, seed: { type: "string" } });
  const out = flags.out ?? path.join("data", "instructions");
  const { train, test } = generateInstructions({
    seed: integerFlag("seed", flags.seed, defaultInstructionOptions.seed),
  });
  fs.mkdirSync(out, { recursive: true });
  for (const [name, conversations] of [
    ["train", train],
    ["test", test],
  ] as const) {
    const file = path.join(out, `${name}.jsonl`);
    writeConversations(file, conversations);
    const perTask = TASKS.map((task) => `${task} ${conversations.filter((c) => c.task === task).length}`).join(", ");
    console.log(
      `${file}: ${conversations.length} conversations, ${(fs.statSync(file).size / 1e6).toFixed(2)} MB (${perTask})`,
    );
  }
});
