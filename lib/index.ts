/**
 * gpt-course: the public API of the course library. Everything a notebook, exercise or script needs is
 * exported here, grouped by the concept (and the folder) it belongs to.
 */
import * as tf from "@tensorflow/tfjs";

/** The TensorFlow.js instance lib uses: import it from here so notebooks and lib share one engine. */
export { tf };

// Backends: where the maths runs.
export { initBackend, availableBackends, backendNames } from "./backend/backend.js";
export type { BackendInfo, BackendName } from "./backend/backend.js";

// Tokenizers: text ⇄ token ids.
export type { Tokenizer, TokenizerJSON, EncodeOptions } from "./tokenizers/tokenizer.js";
export { BaseTokenizer, decodeBytes } from "./tokenizers/tokenizer.js";
export { CharTokenizer } from "./tokenizers/char.js";
export { BPETokenizer, DIGITS_PATTERN, GPT2_PATTERN } from "./tokenizers/bpe.js";
export { trainBPEFast } from "./tokenizers/bpe-fast.js";
export type { MergeStep, TrainOptions as BPETrainOptions } from "./tokenizers/bpe.js";
export { GPT2Tokenizer, END_OF_TEXT, bpeFromGPT2, gpt2TokenBytes } from "./tokenizers/gpt2.js";
export { tokenizerFromJSON, saveTokenizer, loadTokenizer } from "./tokenizers/io.js";

// Neural network building blocks.
export { Module } from "./nn/module.js";
export { Linear, LayerNorm, Embedding, Dropout } from "./nn/layers.js";
export { gelu, geluTanh, activationFunction } from "./nn/activations.js";
export type { Activation } from "./nn/activations.js";
export {
  scaledDotProductAttention,
  causalMask,
  documentMask,
  MultiHeadAttention,
  CrossAttention,
  KVCache,
  MASKED_SCORE,
} from "./nn/attention.js";
export type {
  AttentionMaskOptions,
  AttentionConfig,
  AttentionCallOptions,
  CrossAttentionCallOptions,
  MultiHeadAttentionConfig,
} from "./nn/attention.js";
export { MLP, TransformerBlock, EncoderBlock, DecoderBlock } from "./nn/blocks.js";
export type { BlockConfig, BlockCallOptions } from "./nn/blocks.js";

// Models.
export { gptConfig, validateConfig, countParameters, presets } from "./models/config.js";
export type { GPTConfig, GPTConfigInput, PresetName } from "./models/config.js";
export { GPT } from "./models/gpt.js";
export type { GPTCallOptions } from "./models/gpt.js";
export { EncoderDecoderTransformer, sinusoidalPositions, defaultTransformerConfig } from "./models/transformer.js";
export type { TransformerConfig, TransformerCallOptions } from "./models/transformer.js";

// Training.
export { crossEntropy, IGNORE_INDEX } from "./training/loss.js";
export { AdamW, clipByGlobalNorm, defaultDecays, defaultAdamWOptions } from "./training/optimizer.js";
export type { AdamWOptions, AdamWState } from "./training/optimizer.js";
export { learningRateAt } from "./training/schedule.js";
export type { LearningRateSchedule } from "./training/schedule.js";
export { TokenDataset, readTextCorpus } from "./training/data.js";
export type { Batch, BatchSource, Split, TokenDatasetOptions } from "./training/data.js";
export { Trainer, defaultTrainerOptions } from "./training/trainer.js";
export type {
  TrainerOptions,
  TrainerState,
  StepResult,
  EvalResult,
  TrainingHistory,
  TrainOptions,
  Objective,
} from "./training/trainer.js";
export { saveCheckpoint, loadCheckpoint, resumeTrainer, loadParameters } from "./training/checkpoint.js";
export { coursePretraining } from "./training/recipe.js";
export type { Checkpoint } from "./training/checkpoint.js";
export { checkpointFromBytes } from "./training/checkpoint-bytes.js";

// Generation.
export { generate } from "./generation/generate.js";
export type { GenerateOptions, GenerateResult } from "./generation/generate.js";
export { textStream } from "./generation/stream.js";
export { nextTokenProbabilities, sampleNextToken, argmax } from "./generation/sampling.js";
export type { SamplingOptions } from "./generation/sampling.js";

// Fine-tuning into a chat model.
export {
  ROLES,
  CHAT_TOKENS,
  addChatTokens,
  chatTokenIds,
  renderConversation,
  renderPrompt,
} from "./finetuning/chat-template.js";
export type { Role, ChatMessage, ChatTokenIds, RenderedConversation } from "./finetuning/chat-template.js";
export { ConversationDataset } from "./finetuning/sft-data.js";
export type { ConversationDatasetOptions } from "./finetuning/sft-data.js";
export { chat, fitToContext } from "./finetuning/chat.js";
export type { ChatOptions, ChatReply } from "./finetuning/chat.js";
export { evaluateExactMatch, accuracyTable } from "./finetuning/evaluate.js";
export type {
  EvaluationExample,
  GradedAnswer,
  TaskAccuracy,
  EvaluationResult,
  EvaluationOptions,
} from "./finetuning/evaluate.js";
export { extendVocabulary } from "./finetuning/extend-vocabulary.js";
export { LoRAAdapter, LoRAGPT, defaultLoRAOptions } from "./finetuning/lora.js";
export { chatBasePretraining, courseFineTuning } from "./finetuning/recipe.js";
export type { LoRAOptions, LoRATarget } from "./finetuning/lora.js";

// Weights I/O.
export { openSafetensors, writeSafetensors, SafetensorsFile, SafetensorsError } from "./weights/safetensors.js";
export type { TensorToWrite, TensorInfo, SafetensorsDtype } from "./weights/safetensors.js";
export { loadGPT2, saveGPT2, configFromHF, configToHF } from "./weights/gpt2.js";
export type { HFGPT2Config } from "./weights/gpt2.js";

// Visualisation: Plotly figures, shown in notebooks.
export {
  lineChart,
  lossCurves,
  heatmap,
  barChart,
  groupedBarChart,
  sideBySide,
  HEATMAP_COLOURS,
  DIVERGING_COLOURS,
} from "./viz/figures.js";
export type { Figure } from "./viz/figures.js";
export {
  showFigure,
  liveFigure,
  figureHtml,
  figureFromHtml,
  FIGURE_MARK,
  PLOTLY_LIBRARY_MARK,
  showTable,
  tableHtml,
  escapeHtml,
} from "./viz/notebook.js";

// Utilities.
export { Random } from "./utils/random.js";
export { maxAbsDiff, assertClose, expectError } from "./utils/checks.js";
export { ProgressBar, formatDuration, formatBytes } from "./utils/progress.js";

// Preference tuning after fine-tuning (chapter 10): DPO and reinforcement learning from a verifiable reward.
export { targetLogProbabilities, referenceLogProbabilities } from "./alignment/log-probabilities.js";
export { answerRows } from "./alignment/answers.js";
export { dpoLoss, dpoObjective, PreferenceDataset } from "./alignment/dpo.js";
export { alignmentRecipes } from "./alignment/recipe.js";
export type { PreferencePair, PreferenceDatasetOptions } from "./alignment/dpo.js";
export {
  groupAdvantages,
  policyGradientObjective,
  RewardSampler,
  exactAnswerReward,
} from "./alignment/policy-gradient.js";
export type { VerifiableQuestion, RewardSamplerOptions, SampledRewards } from "./alignment/policy-gradient.js";
