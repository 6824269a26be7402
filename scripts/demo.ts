/**
 * A two-minute tour of the library, and an example of using it from your own script: everything comes from
 * the package `gpt-course` by name, exactly as it would in a project outside this repository
 * (`npm install path/to/this/repo/lib`, then `import { GPT } from "gpt-course"`).
 *
 *   npm run demo
 *
 * It trains a small character-level GPT on a few State of the Union addresses and prints what it writes
 * before and after.
 */
import { loadStateOfTheUnion } from "course-data";
import { CharTokenizer, generate, GPT, initBackend, TokenDataset, Trainer } from "gpt-course";

async function main(): Promise<void> {
  const backend = await initBackend();
  console.log(`backend: ${backend.name} (${backend.description})`);

  const text = loadStateOfTheUnion({ from: 1990 });
  const tokenizer = CharTokenizer.fromText(text);
  const model = new GPT({
    preset: "tiny",
    vocabSize: tokenizer.vocabSize,
    contextLength: 64,
    embeddingDim: 64,
    numHeads: 4,
  });
  console.log(
    `${model.numParameters().toLocaleString("en-US")} parameters, ${tokenizer.vocabSize} characters, ${text.length.toLocaleString("en-US")} characters of text`,
  );

  const sample = async (): Promise<string> => {
    const { tokens } = await generate(model, tokenizer.encode("The state of our Union is"), {
      maxNewTokens: 120,
      temperature: 0.8,
      seed: 1,
    });
    return tokenizer.decode(tokens[0]);
  };
  console.log(`\nbefore training: The state of our Union is${await sample()}\n`);

  const data = new TokenDataset(tokenizer.encode(text), { contextLength: 64, batchSize: 16 });
  const trainer = new Trainer(model, data, {
    maxSteps: 600,
    learningRate: 3e-3,
    warmupSteps: 50,
    evalInterval: 200,
    evalBatches: 10,
  });
  await trainer.train({ onEval: (e) => console.log(`\nstep ${e.step}: validation loss ${e.validation.toFixed(3)}`) });

  console.log(`\nafter training: The state of our Union is${await sample()}`);
  trainer.dispose();
  model.dispose();
}

main().then(() => process.exit(0));
