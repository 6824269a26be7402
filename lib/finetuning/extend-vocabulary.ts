import * as tf from "@tensorflow/tfjs";
import { GPT } from "../models/gpt.js";

/**
 * Grows a trained model's vocabulary, for the tokens a chat template adds (`addChatTokens`).
 *
 * The token embedding `wte` has one row per id (and an untied `lm_head` one column per id). New ids come
 * after the old ones, so every old row is copied unchanged and the model behaves exactly as before on
 * old tokens. Each new row starts at the mean of the old rows plus the small random vector a fresh model
 * would have there (N(0, initStd²)): the mean keeps the new tokens' output scores ordinary, so the first
 * fine-tuning steps are not spent undoing a wild guess, and the random part makes the new tokens
 * different from one another from the start (Hewitt, "Initializing New Word Embeddings", 2021).
 *
 * Returns a new model (the old one is left untouched: dispose it when no longer needed), or `model`
 * itself when it already has `vocabSize` ids.
 */
export function extendVocabulary(model: GPT, vocabSize: number): GPT {
  const oldSize = model.config.vocabSize;
  if (!Number.isInteger(vocabSize) || vocabSize < oldSize) {
    throw new Error(`extendVocabulary: vocabSize must be an integer ≥ the model's ${oldSize}, got ${vocabSize}.`);
  }
  if (vocabSize === oldSize) return model;
  const extended = new GPT({ ...model.config, vocabSize });
  const old = new Map(model.namedParameters());
  tf.tidy(() => {
    for (const [name, variable] of extended.namedParameters()) {
      const trained = old.get(name) as tf.Variable;
      if (trained.shape.join() === variable.shape.join()) {
        variable.assign(trained);
        continue;
      }
      // wte.weight is (V, C): ids on axis 0. lm_head.weight is (C, V): ids on axis 1.
      const idAxis = variable.shape[0] === vocabSize ? 0 : 1;
      const fresh = idAxis === 0 ? variable.slice([oldSize, 0], [-1, -1]) : variable.slice([0, oldSize], [-1, -1]);
      const newRows = trained.mean(idAxis, true).add(fresh);
      variable.assign(tf.concat([trained, newRows], idAxis));
    }
  });
  return extended;
}
