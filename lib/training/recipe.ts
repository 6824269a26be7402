import type { GPTConfigInput } from "../models/config.js";
import type { TokenDatasetOptions } from "./data.js";
import type { TrainerOptions } from "./trainer.js";

/**
 * The course's pretraining recipe: the course model on the State of the Union addresses with a character
 * tokenizer. Notebook 05 and `npm run pretrain` use it, and `npm run bench:parity` checks that PyTorch reaches
 * the same validation loss with it.
 *
 * 2,000 steps of 16 × 128 tokens (4.1M tokens, less than half a pass over the corpus): 9-11 minutes on 2 CPU
 * cores, validation loss 1.56-1.58 nats per character (2026-12-03), mostly real words. The peak learning rate
 * 2e-3 suits a run this short (1e-3 over 3,000 steps reached 1.651 after 2,000 of them and 1.557 at the end);
 * the cosine decay to a twentieth of it makes the last few hundred steps settle the weights.
 */
export const coursePretraining = {
  model: { preset: "course", dropout: 0 } satisfies GPTConfigInput,
  trainer: {
    maxSteps: 2000,
    learningRate: 2e-3,
    minLearningRate: 1e-4,
    warmupSteps: 100,
    evalInterval: 250,
    evalBatches: 20,
  } satisfies Partial<TrainerOptions>,
  data: { batchSize: 16, validationFraction: 0.1, seed: 1337 } satisfies Partial<TokenDatasetOptions>,
};
