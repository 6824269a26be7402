import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { GPT } from "../models/gpt.js";
import { tokenizerFromJSON } from "../tokenizers/io.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { openSafetensors, type TensorToWrite, writeSafetensors } from "../weights/safetensors.js";
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type CheckpointConfig,
  checkCheckpointConfig,
  checkFinite,
  copyParameters,
} from "./checkpoint-bytes.js";
import type { Trainer, TrainerOptions, TrainerState } from "./trainer.js";

/**
 * A checkpoint is one directory:
 *
 *   config.json            model config, trainer options, tokenizer (everything to rebuild the model)
 *   model.safetensors      the weights, under GPT-2's parameter names
 *   optimizer.safetensors  AdamW's moment estimates (only when saved with a trainer)
 *   trainer.json           step, random-generator states and loss history (only with a trainer)
 *
 * Saving is atomic: the new checkpoint is written in full next to the old one and then swapped in with
 * renames, so a crash or a full disk during a save leaves the previous checkpoint intact. config.json, written
 * last, holds a SHA-256 checksum of each other file, so that loading detects a file corrupted on disk or in a
 * copy (and names it) instead of training on damaged weights.
 *
 * The checks of config.json and of the weights live in checkpoint-bytes.ts, shared with
 * `checkpointFromBytes`, which loads a checkpoint from its files' bytes where there is no file system (a web
 * page).
 */

interface TrainerFile {
  step: number;
  optimizerStep: number;
  data: unknown;
  modelRandom: number;
  history: TrainerState["history"];
}

export interface Checkpoint {
  model: GPT;
  tokenizer?: Tokenizer;
  /** Options of the trainer that saved it, to build an identical trainer for resuming. */
  trainerOptions?: TrainerOptions;
  /** Pass to `trainer.setState` to resume; undefined when saved without a trainer. */
  trainerState?: TrainerState;
  /** Frees the optimizer moments held by `trainerState` (after `trainer.setState` copied them). */
  disposeTrainerState(): void;
}

export async function saveCheckpoint(
  directory: string,
  contents: { model: GPT; tokenizer?: Tokenizer; trainer?: Trainer },
): Promise<void> {
  const { model, tokenizer, trainer } = contents;
  const incoming = `${directory}.incoming`;
  const previous = `${directory}.previous`;
  try {
    fs.rmSync(incoming, { recursive: true, force: true });
    fs.mkdirSync(incoming, { recursive: true });
  } catch (error) {
    throw new Error(
      `saveCheckpoint: cannot create a folder at "${incoming}" (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): choose an output path whose parent folders exist or can be made, and are not files.`,
    );
  }
  try {
    await writeSafetensors(path.join(incoming, "model.safetensors"), await tensorsToWrite(model.namedParameters()), {
      format: "pt",
    });
    if (trainer) {
      const state = trainer.getState();
      try {
        const moments: Array<[string, tf.Tensor]> = [
          ...Object.entries(state.optimizer.firstMoments).map(([name, t]): [string, tf.Tensor] => [`m.${name}`, t]),
          ...Object.entries(state.optimizer.secondMoments).map(([name, t]): [string, tf.Tensor] => [`v.${name}`, t]),
        ];
        await writeSafetensors(path.join(incoming, "optimizer.safetensors"), await tensorsToWrite(moments));
      } finally {
        tf.dispose([...Object.values(state.optimizer.firstMoments), ...Object.values(state.optimizer.secondMoments)]);
      }
      const trainerFile: TrainerFile = {
        step: state.step,
        optimizerStep: state.optimizer.step,
        data: state.data,
        modelRandom: state.modelRandom,
        history: state.history,
      };
      writeJson(path.join(incoming, "trainer.json"), trainerFile);
    }
    const config: CheckpointConfig = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, model: model.config };
    if (tokenizer) config.tokenizer = tokenizer.toJSON();
    if (trainer) config.trainer = trainer.options;
    config.checksums = Object.fromEntries(
      fs
        .readdirSync(incoming)
        .sort()
        .map((file) => [file, sha256(path.join(incoming, file))]),
    );
    writeJson(path.join(incoming, "config.json"), config);
  } catch (error) {
    fs.rmSync(incoming, { recursive: true, force: true });
    throw new Error(
      `saveCheckpoint: could not write "${directory}" (${(error as Error).message}); any previous checkpoint there is unchanged.`,
    );
  }
  // The swap: only renames, each atomic on one file system.
  fs.rmSync(previous, { recursive: true, force: true });
  if (fs.existsSync(directory)) fs.renameSync(directory, previous);
  fs.renameSync(incoming, directory);
  fs.rmSync(previous, { recursive: true, force: true });
}

export async function loadCheckpoint(directory: string): Promise<Checkpoint> {
  let location = directory;
  if (!fs.existsSync(location)) {
    // A crash between the two renames of a save leaves the last complete checkpoint here.
    if (fs.existsSync(`${directory}.previous`)) location = `${directory}.previous`;
    else throw new Error(`loadCheckpoint: no checkpoint at "${directory}" (the directory does not exist).`);
  }
  const config = readConfig(location);
  verifyChecksums(location, config);
  const model = new GPT(config.model);
  try {
    await loadParameters(model.namedParameters(), path.join(location, "model.safetensors"));
    const tokenizer = config.tokenizer ? tokenizerFromJSON(config.tokenizer) : undefined;
    const trainerState = fs.existsSync(path.join(location, "trainer.json"))
      ? await readTrainerState(location, model)
      : undefined;
    return {
      model,
      tokenizer,
      trainerOptions: config.trainer,
      trainerState,
      disposeTrainerState() {
        if (!trainerState) return;
        tf.dispose([
          ...Object.values(trainerState.optimizer.firstMoments),
          ...Object.values(trainerState.optimizer.secondMoments),
        ]);
      },
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Loads a checkpoint and puts `trainer` (built with the checkpoint's model and options) where it stopped. */
export function resumeTrainer(trainer: Trainer, checkpoint: Checkpoint): void {
  if (!checkpoint.trainerState)
    throw new Error("resumeTrainer: this checkpoint was saved without a trainer, so there is nothing to resume.");
  trainer.setState(checkpoint.trainerState);
  checkpoint.disposeTrainerState();
}

function readConfig(directory: string): CheckpointConfig {
  const file = path.join(directory, "config.json");
  return checkCheckpointConfig(readJson(file), file, "loadCheckpoint");
}

/** Compares each file with the checksum config.json recorded when it was saved. */
function verifyChecksums(directory: string, config: CheckpointConfig): void {
  for (const [file, expected] of Object.entries(config.checksums ?? {})) {
    const full = path.join(directory, file);
    if (!fs.existsSync(full))
      throw new Error(`loadCheckpoint: ${full} is missing, but config.json lists it: the checkpoint is incomplete.`);
    if (sha256(full) !== expected) {
      throw new Error(
        `loadCheckpoint: ${full} is corrupt (its SHA-256 checksum differs from the one saved in config.json). Restore it from a copy, or train again.`,
      );
    }
  }
}

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

async function readTrainerState(directory: string, model: GPT): Promise<TrainerState> {
  const file = readJson(path.join(directory, "trainer.json")) as TrainerFile;
  if (!Number.isInteger(file.step) || !Number.isInteger(file.optimizerStep) || !file.history) {
    throw new Error(
      `loadCheckpoint: ${path.join(directory, "trainer.json")} is malformed (step, optimizerStep and history are required).`,
    );
  }
  const names = model.namedParameters().map(([name]) => name);
  const firstMoments: Record<string, tf.Tensor> = {};
  const secondMoments: Record<string, tf.Tensor> = {};
  const optimizerPath = path.join(directory, "optimizer.safetensors");
  if (!fs.existsSync(optimizerPath)) {
    throw new Error(
      `loadCheckpoint: ${optimizerPath} is missing, but trainer.json is there: the optimizer state is lost. Load the weights alone by deleting trainer.json, or resume from an earlier checkpoint.`,
    );
  }
  const optimizerFile = await openSafetensors(optimizerPath);
  try {
    for (const name of names) {
      for (const [prefix, target] of [
        ["m", firstMoments],
        ["v", secondMoments],
      ] as const) {
        const { shape, data } = await optimizerFile.readTensor(`${prefix}.${name}`);
        checkFinite(data, `${prefix}.${name}`, optimizerPath);
        target[name] = tf.tensor(data as Float32Array, [...shape], "float32");
      }
    }
  } catch (error) {
    tf.dispose([...Object.values(firstMoments), ...Object.values(secondMoments)]);
    throw error;
  } finally {
    await optimizerFile.close();
  }
  return {
    step: file.step,
    optimizer: { step: file.optimizerStep, firstMoments, secondMoments },
    data: file.data,
    modelRandom: file.modelRandom,
    history: file.history,
  };
}

/** Copies every named parameter from a safetensors file, checking names and shapes. */
export async function loadParameters(named: Array<[string, tf.Variable]>, file: string): Promise<void> {
  const weights = await openSafetensors(file);
  try {
    await copyParameters(named, weights);
  } finally {
    await weights.close();
  }
}

async function tensorsToWrite(named: Array<[string, tf.Tensor]>): Promise<Record<string, TensorToWrite>> {
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, tensor] of named) {
    tensors[name] = { dtype: "F32", shape: tensor.shape, data: (await tensor.data()) as Float32Array };
  }
  return tensors;
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

function readJson(file: string): unknown {
  if (!fs.existsSync(file)) throw new Error(`loadCheckpoint: ${file} is missing. Is this a checkpoint directory?`);
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(
      `loadCheckpoint: ${file} is not valid JSON (${(error as Error).message}). The file may be corrupt.`,
    );
  }
}
