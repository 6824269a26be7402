/**
 * Generates text from a checkpoint.
 *
 *   npm run generate -- --checkpoint dir --prompt "..." [--max-new-tokens N] [--temperature T] [--top-k K]
 *                       [--top-p P] [--seed S] [--num-sequences N] [--no-cache]
 */
import { generate, loadCheckpoint, textStream } from "gpt-course";
import { fail, integerFlag, numberFlag, parseCommandLine, run, startBackend } from "./cli.js";

const usage = `usage: npm run generate -- --checkpoint DIR --prompt TEXT [options]
  --max-new-tokens N   tokens to generate (default 200)
  --temperature T      0 = greedy; below 1 = safer, above 1 = wilder (default 0.8)
  --top-k K            sample only among the K most likely tokens
  --top-p P            sample only within the smallest set of tokens with probability ≥ P
  --seed S             same seed, same text (default 1337)
  --num-sequences N    independent continuations (default 1)
  --no-cache           recompute every position each step (slower; same tokens)`;

run(async () => {
  const flags = parseCommandLine(usage, {
    checkpoint: { type: "string" },
    prompt: { type: "string" },
    "max-new-tokens": { type: "string" },
    temperature: { type: "string" },
    "top-k": { type: "string" },
    "top-p": { type: "string" },
    seed: { type: "string" },
    "num-sequences": { type: "string" },
    "no-cache": { type: "boolean" },
  });
  if (!flags.checkpoint) fail(`--checkpoint is required.\n\n${usage}`);
  await startBackend();
  const { model, tokenizer } = await loadCheckpoint(flags.checkpoint);
  if (!tokenizer) fail(`${flags.checkpoint} has no tokenizer saved with it, so text cannot be encoded.`);
  const prompt = tokenizer.encode(flags.prompt ?? "\n");
  if (prompt.length === 0) fail("the prompt encodes to no tokens; give some text.");
  const numSequences = integerFlag("num-sequences", flags["num-sequences"], 1);
  const stream = numSequences === 1 ? textStream(tokenizer, (text) => process.stdout.write(text)) : undefined;
  if (stream) process.stdout.write(flags.prompt ?? "");
  const result = await generate(model, prompt, {
    maxNewTokens: integerFlag("max-new-tokens", flags["max-new-tokens"], 200),
    temperature: numberFlag("temperature", flags.temperature, 0.8),
    topK: flags["top-k"] === undefined ? undefined : integerFlag("top-k", flags["top-k"], 0),
    topP: numberFlag("top-p", flags["top-p"], 1),
    seed: integerFlag("seed", flags.seed, 1337),
    numSequences,
    useCache: !flags["no-cache"],
    // One sequence streams token by token; several are printed one after another at the end.
    onToken: stream,
  });
  if (stream) process.stdout.write("\n");
  else
    result.tokens.forEach((tokens, i) =>
      console.log(`--- sequence ${i + 1} ---\n${flags.prompt ?? ""}${tokenizer.decode(tokens)}\n`),
    );
});
