import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { Random } from "../utils/random.js";

/** One training batch: inputs (B, T) and the ids that should come next, targets (B, T), both int32. */
export interface Batch {
  inputs: tf.Tensor2D;
  targets: tf.Tensor2D;
  /** Rows packed with several documents: each token's document and its position in it (see GPTCallOptions). */
  documents?: { documentIds: tf.Tensor2D; positions: tf.Tensor2D };
  /**
   * Preference tuning (lib/alignment): a frozen reference model's log-probability of each target, (B, T), 0
   * where the target is IGNORE_INDEX; and a weight per row, e.g. how much better a sampled answer did than
   * its group (its advantage).
   */
  reference?: tf.Tensor2D;
  advantages?: tf.Tensor1D;
}

export type Split = "train" | "validation";

/**
 * Anything the Trainer can draw batches from: a pretraining corpus, or conversations for fine-tuning.
 * Its random state travels in checkpoints so a resumed run draws the same batches.
 */
export interface BatchSource {
  /** A batch; asynchronous where drawing it means running a model (reinforcement learning samples answers). */
  nextBatch(split: Split): Batch | Promise<Batch>;
  getState(): unknown;
  setState(state: unknown): void;
}

/**
 * One seeded generator per split, so that drawing validation batches never changes which training batches come
 * next. Its state is what a BatchSource keeps in a checkpoint, so a resumed run draws the same batches.
 */
export class SplitRandom {
  readonly train: Random;
  readonly validation: Random;

  constructor(seed: number) {
    this.train = new Random(seed);
    this.validation = new Random(seed + 1);
  }

  getState(): { train: number; validation: number } {
    return { train: this.train.getState(), validation: this.validation.getState() };
  }

  /** `owner` names the batch source in the error about a malformed state. */
  setState(state: unknown, owner: string): void {
    const { train, validation } = (state ?? {}) as { train?: unknown; validation?: unknown };
    if (typeof train !== "number" || typeof validation !== "number")
      throw new Error(`${owner}.setState: malformed state.`);
    this.train.setState(train);
    this.validation.setState(validation);
  }
}

export interface TokenDatasetOptions {
  contextLength: number; // T: tokens per training window
  batchSize: number; // B: windows per batch
  validationFraction: number; // the last part of the stream, never trained on
  seed: number;
}

/**
 * A token stream cut into a training part and a validation part (the last `validationFraction` of it),
 * from which random windows are drawn: inputs = tokens[i .. i+T), targets = tokens[i+1 .. i+T+1).
 * Each window teaches T next-token predictions at once.
 */
export class TokenDataset implements BatchSource {
  readonly train: Int32Array;
  readonly validation: Int32Array;
  readonly options: TokenDatasetOptions;
  private readonly random: SplitRandom;

  constructor(tokens: ArrayLike<number>, options: Partial<TokenDatasetOptions> & { contextLength: number }) {
    this.options = { batchSize: 16, validationFraction: 0.1, seed: 1337, ...options };
    const { contextLength, batchSize, validationFraction } = this.options;
    if (!Number.isInteger(contextLength) || contextLength < 1)
      throw new Error(`TokenDataset: contextLength must be a positive integer, got ${contextLength}.`);
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`TokenDataset: batchSize must be a positive integer, got ${batchSize}.`);
    if (!(validationFraction > 0 && validationFraction < 1))
      throw new Error(`TokenDataset: validationFraction must be in (0, 1), got ${validationFraction}.`);
    if (tokens.length === 0) throw new Error("TokenDataset: the token stream is empty. Was the training text empty?");
    const all = Int32Array.from(tokens);
    const split = Math.floor(all.length * (1 - validationFraction));
    this.train = all.subarray(0, split);
    this.validation = all.subarray(split);
    for (const [name, part] of [
      ["training", this.train],
      ["validation", this.validation],
    ] as const) {
      if (part.length < contextLength + 1) {
        throw new Error(
          `TokenDataset: the ${name} part has ${part.length} tokens but a window needs contextLength + 1 = ` +
            `${contextLength + 1}. Use more text (${all.length} tokens now), a shorter contextLength, or another validationFraction.`,
        );
      }
    }
    this.random = new SplitRandom(this.options.seed);
  }

  nextBatch(split: Split): Batch {
    const source = split === "train" ? this.train : this.validation;
    const { contextLength: T, batchSize: B } = this.options;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = this.random[split].int(source.length - T);
      inputs.set(source.subarray(start, start + T), b * T);
      targets.set(source.subarray(start + 1, start + T + 1), b * T);
    }
    return { inputs: tf.tensor2d(inputs, [B, T], "int32"), targets: tf.tensor2d(targets, [B, T], "int32") };
  }

  getState(): { train: number; validation: number } {
    return this.random.getState();
  }

  setState(state: unknown): void {
    this.random.setState(state, "TokenDataset");
  }
}

/**
 * Reads a text corpus: one file, or every .txt/.md file in a folder (sorted by name, joined with blank
 * lines). Throws if nothing readable is there or the text is empty.
 */
export function readTextCorpus(location: string): string {
  if (!fs.existsSync(location))
    throw new Error(`readTextCorpus: "${location}" does not exist. Give a text file or a folder of .txt files.`);
  const files = fs.statSync(location).isDirectory()
    ? fs
        .readdirSync(location)
        .filter((name) => /\.(txt|md)$/i.test(name))
        .sort()
        .map((name) => path.join(location, name))
    : [location];
  if (files.length === 0) throw new Error(`readTextCorpus: the folder "${location}" has no .txt or .md files.`);
  const text = files.map((file) => fs.readFileSync(file, "utf8")).join("\n\n");
  if (text.trim().length === 0) throw new Error(`readTextCorpus: "${location}" contains no text.`);
  return text;
}
