/**
 * Chat with a fine-tuned model in the terminal.
 *
 *   npm run chat -- --checkpoint dir [--system TEXT] [--temperature T] [--max-new-tokens N]
 *
 * Replies stream token by token. The conversation is remembered until it no longer fits the model's
 * context; then the oldest exchanges are forgotten first. Commands: /reset, /temperature N, /help, /exit.
 * Ctrl-C stops a reply being written (and quits at the prompt); Ctrl-D quits.
 */
import * as readline from "node:readline";
import { type ChatMessage, chat, chatTokenIds, loadCheckpoint } from "gpt-course";
import { fail, integerFlag, numberFlag, parseCommandLine, run, startBackend } from "./cli.js";

const usage = `usage: npm run chat -- --checkpoint DIR [options]
  --system TEXT         a system message that opens the conversation
  --temperature T       0 = always the most likely token (default 0)
  --max-new-tokens N    longest reply (default 100)
  --seed S              seed of the sampling (default 1337)`;

const help = `commands: /reset (forget the conversation), /temperature N (0 = greedy), /exit (or Ctrl-D)
Ctrl-C stops a reply while it is being written.`;

run(async () => {
  const flags = parseCommandLine(usage, {
    checkpoint: { type: "string" },
    system: { type: "string" },
    temperature: { type: "string" },
    "max-new-tokens": { type: "string" },
    seed: { type: "string" },
  });
  if (!flags.checkpoint) fail(`--checkpoint is required.\n\n${usage}`);
  let temperature = numberFlag("temperature", flags.temperature, 0);
  if (temperature < 0) fail("--temperature must be ≥ 0.");
  const maxNewTokens = integerFlag("max-new-tokens", flags["max-new-tokens"], 100);
  const seed = integerFlag("seed", flags.seed, 1337);
  await startBackend();
  const { model, tokenizer } = await loadCheckpoint(flags.checkpoint);
  if (!tokenizer) fail(`${flags.checkpoint} has no tokenizer saved with it, so text cannot be encoded.`);
  try {
    chatTokenIds(tokenizer);
  } catch {
    fail(
      `${flags.checkpoint} is a base model without chat tokens. Fine-tune it first: npm run finetune -- --checkpoint ${flags.checkpoint}`,
    );
  }

  const opening: ChatMessage[] = flags.system ? [{ role: "system", content: flags.system }] : [];
  let history: ChatMessage[] = [...opening];
  let replies = 0;
  let generation: AbortController | undefined;

  const terminal = readline.createInterface({ input: process.stdin, output: process.stdout, prompt: "you> " });
  // Ctrl-C: on a terminal readline reports it as its own SIGINT event; when input is piped, the process gets the signal.
  const interrupt = () => {
    if (generation)
      generation.abort(); // stop this reply, keep chatting
    else terminal.close(); // at the prompt: quit
  };
  terminal.on("SIGINT", interrupt);
  process.on("SIGINT", interrupt);

  console.log(`chat model: ${flags.checkpoint} (context ${model.config.contextLength} tokens). ${help}`);
  terminal.prompt();
  for await (const line of terminal) {
    const text = line.trim();
    if (text === "") {
      terminal.prompt();
      continue;
    }
    if (text.startsWith("/")) {
      const [command, argument] = text.split(/\s+/, 2);
      if (command === "/exit" || command === "/quit") break;
      if (command === "/reset") {
        history = [...opening];
        console.log("(conversation forgotten)");
      } else if (command === "/temperature") {
        const value = Number(argument);
        if (argument === undefined || !Number.isFinite(value) || value < 0)
          console.log(`(usage: /temperature N with N ≥ 0; now ${temperature})`);
        else {
          temperature = value;
          console.log(`(temperature ${temperature})`);
        }
      } else {
        console.log(help);
      }
      terminal.prompt();
      continue;
    }
    try {
      tokenizer.encode(text); // a character the tokenizer does not know: say so before it becomes part of the history
    } catch (error) {
      console.log(`(cannot read that: ${(error as Error).message})`);
      terminal.prompt();
      continue;
    }

    const messages: ChatMessage[] = [...history, { role: "user", content: text }];
    generation = new AbortController();
    process.stdout.write("assistant> ");
    const reply = await chat(model, tokenizer, messages, {
      temperature,
      maxNewTokens,
      seed: seed + replies++,
      signal: generation.signal,
      onToken: (piece) => process.stdout.write(piece),
    });
    generation = undefined;
    process.stdout.write(reply.finishReason === "aborted" ? " (stopped)\n" : "\n");
    if (reply.truncatedLastMessage)
      console.log("(your message was longer than the model can read: only its end was used)");
    if (reply.droppedMessages > 0)
      console.log(`(the ${reply.droppedMessages} oldest messages no longer fit the context and are forgotten)`);
    // Keep only what the model still sees (and the system message), so the history never grows without bound.
    const system = messages[0]?.role === "system" ? [messages[0]] : [];
    history = [
      ...system,
      ...messages.slice(system.length + reply.droppedMessages),
      { role: "assistant", content: reply.text },
    ];
    terminal.prompt();
  }
  terminal.close();
  console.log("\nbye");
});
