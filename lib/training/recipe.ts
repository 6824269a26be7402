import type { GPTConfigInput } from "../models/config.js";
import type { TokenDatasetOptions } from "./data.js";
import type { TrainerOptions } from "./trainer.js";

/**
 * The course's pretraining recipe: the course model on the State of the Union addresses with a character
 * tokenizer. `npm run pretrain` uses it unless a config file says otherwise, and `npm run bench:parity`
 * checks that PyTorch reaches the same validation loss with it.
 *
 * 3,000 steps of 16 × 128 tokens (6.1M tokens, about 0.6 passes over the corpus): ~35 minutes on one CPU
 * core. The peak learning rate 1e-3 is a safe choice for a model this small with AdamW; the cosine decay
 * to a tenth of it makes the last few hundred steps settle the weights.
 */
export const coursePretraining = {
  model: { preset: "course", dropout: 0 } satisfies GPTConfigInput,
  trainer: {
    maxSteps: 3000,
    learningRate: 1e-3,
    minLearningRate: 1e-4,
    warmupSteps: 100,
    evalInterval: 250,
    evalBatches: 20,
  } satisfies Partial<TrainerOptions>,
  data: { batchSize: 16, validationFraction: 0.1, seed: 1337 } satisfies Partial<TokenDatasetOptions>,
};
