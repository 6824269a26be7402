/**
 * Getting a checkpoint's two files into the page: from the server (`npm run web -- --checkpoint DIR` serves
 * them at checkpoint/), or from files the learner picks (which works from any static host). Turning the
 * bytes into a model is lib's `checkpointFromBytes`, with the same checks as loadCheckpoint in Node.
 */
import type { GPT } from "../lib/models/gpt.ts";
import type { Tokenizer } from "../lib/tokenizers/tokenizer.ts";
import { checkpointFromBytes } from "../lib/training/checkpoint-bytes.ts";

/** The bytes of a checkpoint's config.json and model.safetensors, and where they came from (for messages). */
export interface CheckpointFiles {
  /** Where they came from, in words: "the folder 07-chat", "the files you picked", "the server's checkpoint". */
  label: string;
  /** The folder's name, which starts the file names in lib's error messages ("checkpoint" when unknown). */
  source: string;
  configJson: string;
  weights: Uint8Array;
}

/** The checkpoint the server offers at checkpoint/, or undefined when it offers none (or there is no server). */
export async function fetchServedCheckpoint(): Promise<CheckpointFiles | undefined> {
  const config = await fetch("checkpoint/config.json").catch(() => undefined);
  if (!config || config.status === 404 || config.status === 204) return undefined; // 204: npm run web without --checkpoint
  if (!config.ok)
    throw new Error(`The server answered "${config.status} ${config.statusText}" for checkpoint/config.json.`);
  const weights = await fetch("checkpoint/model.safetensors");
  if (!weights.ok) {
    throw new Error(
      `The server has the checkpoint's config.json but not its model.safetensors (${weights.status} ${weights.statusText}): the checkpoint folder is incomplete.`,
    );
  }
  return {
    label: "the server's checkpoint",
    source: "checkpoint",
    configJson: await config.text(),
    weights: new Uint8Array(await weights.arrayBuffer()),
  };
}

/**
 * The checkpoint among files the learner picked: a checkpoint folder (its files keep their folder in
 * `webkitRelativePath`), or config.json and model.safetensors picked together.
 */
export async function readPickedCheckpoint(picked: readonly File[]): Promise<CheckpointFiles> {
  const folders = new Map<string, Map<string, File>>(); // folder → file name → file
  for (const file of picked) {
    const folder = file.webkitRelativePath.split("/").slice(0, -1).join("/");
    if (!folders.has(folder)) folders.set(folder, new Map());
    folders.get(folder)!.set(file.name, file);
  }
  const withConfig = [...folders].filter(([, files]) => files.has("config.json"));
  if (withConfig.length === 0) {
    const names = picked
      .map((file) => file.name)
      .slice(0, 5)
      .join(", ");
    throw new Error(
      `There is no config.json among the files you picked (${names || "none"}). Pick a checkpoint folder, e.g. checkpoints/chat, which holds config.json and model.safetensors.`,
    );
  }
  if (withConfig.length > 1) {
    throw new Error(
      `The folder you picked holds several checkpoints (${withConfig.map(([folder]) => folder).join(", ")}): pick one of them.`,
    );
  }
  const [folder, files] = withConfig[0];
  const label = folder ? `the folder ${folder}` : "the files you picked";
  const weights = files.get("model.safetensors");
  if (!weights)
    throw new Error(`There is a config.json but no model.safetensors in ${label}: the checkpoint is incomplete.`);
  return {
    label,
    source: folder || "checkpoint",
    configJson: await files.get("config.json")!.text(),
    weights: new Uint8Array(await weights.arrayBuffer()),
  };
}

/** The model and tokenizer of a checkpoint; a checkpoint without a tokenizer cannot be chatted with. */
export async function loadCheckpointFiles(files: CheckpointFiles): Promise<{ model: GPT; tokenizer: Tokenizer }> {
  const { model, tokenizer } = await checkpointFromBytes(files.configJson, files.weights, { source: files.source });
  if (!tokenizer) {
    model.dispose();
    throw new Error(
      `The checkpoint in ${files.label} has no tokenizer saved with it (config.json has no "tokenizer"), so text cannot be turned into tokens. Save the checkpoint with its tokenizer: saveCheckpoint(dir, { model, tokenizer }).`,
    );
  }
  model.eval(); // no dropout: generation and the looks inside use the model as trained
  return { model, tokenizer };
}
