import * as tf from "@tensorflow/tfjs";
import { type ChatMessage, chatTokenIds, renderPrompt } from "../finetuning/chat-template.js";
import { generate } from "../generation/generate.js";
import type { GPT } from "../models/gpt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { type Batch, type BatchSource, type Split, SplitRandom } from "../training/data.js";
import { IGNORE_INDEX } from "../training/loss.js";
import type { Objective } from "../training/trainer.js";
import { answerRows } from "./answers.js";
import { referenceLogProbabilities, targetLogProbabilities } from "./log-probabilities.js";

/**
 * Reinforcement learning from a reward a program computes (is the answer right?), as in nanochat's RL stage and
 * DeepSeek's GRPO: for each question, sample a group of G answers from the model itself, score each, and make
 * the better-than-average ones more likely and the worse ones less likely.
 *
 * A group's advantages: A_i = (r_i − mean(r)) / (std(r) + ε), GRPO's. A group whose answers all score alike
 * teaches nothing (every A_i is 0): the signal comes from questions the model sometimes gets right.
 *
 * `divideByStd: false` keeps A_i = r_i − mean(r) (nanochat; "Dr. GRPO", Liu et al. 2025). Dividing by the
 * group's spread makes one lucky right answer among eight weigh +2.65 (against +0.875 undivided), as much as a
 * question the model already half knows: rare wins on hard questions then dominate the step.
 */
export function groupAdvantages(rewards: readonly number[], groupSize: number, divideByStd = true): number[] {
  if (rewards.length % groupSize !== 0)
    throw new Error(`groupAdvantages: ${rewards.length} rewards are not groups of ${groupSize}.`);
  const advantages: number[] = [];
  for (let g = 0; g < rewards.length; g += groupSize) {
    const group = rewards.slice(g, g + groupSize);
    const mean = group.reduce((a, b) => a + b, 0) / groupSize;
    const std = Math.sqrt(group.reduce((a, r) => a + (r - mean) ** 2, 0) / groupSize);
    for (const r of group) advantages.push(divideByStd ? (r - mean) / (std + 1e-6) : r - mean);
  }
  return advantages;
}

/**
 * The policy-gradient loss with a KL leash, per answer token (the answer's tokens are the graded targets):
 *
 *   L = −mean_i [ A_i · mean_t ln π(y_i,t) ]  +  klWeight · mean_{i,t} [ e^{d} − d − 1 ],  d = ln π_ref − ln π
 *
 * The first term's gradient, A_i ∇ln π(y_i), is the REINFORCE estimate of the reward's gradient: answers that
 * beat their group pull the model towards themselves. The second is an estimate of KL(π ‖ π_ref) that is never
 * negative (e^d − d − 1 ≥ 0): it keeps the policy near the fine-tuned model, so that it does not drift into text
 * that only games the reward, and keeps what it learned on the tasks the reward does not test.
 */
export function policyGradientObjective(klWeight: number): Objective {
  return (model, batch) =>
    tf.tidy(() => {
      if (!batch.reference || !batch.advantages)
        throw new Error("policyGradientObjective: the batch needs reference and advantages.");
      const logp = targetLogProbabilities(model.forward(batch.inputs) as tf.Tensor3D, batch.targets); // (B, T)
      const graded = batch.targets.notEqual(IGNORE_INDEX).toFloat(); // (B, T)
      const tokens = graded.sum(1).maximum(1); // (B)
      const policyTerm = batch.advantages.mul(logp.sum(1).div(tokens)).mean().neg();
      const d = batch.reference.sub(logp).mul(graded); // 0 where not graded, and so is e^0 − 0 − 1
      const kl = d.exp().sub(d).sub(1).sum().div(graded.sum().maximum(1));
      return policyTerm.add(kl.mul(klWeight)) as tf.Scalar;
    });
}

/** A question whose answer a program can check: the conversation up to the user's last message. */
export interface VerifiableQuestion {
  task: string;
  history: ChatMessage[];
  expected: string;
}

export interface RewardSamplerOptions {
  questionsPerBatch: number;
  groupSize: number; // answers sampled per question
  temperature: number; // sampling temperature: exploration
  divideByStd: boolean; // groupAdvantages: divide by each group's standard deviation (GRPO) or not
  maxNewTokens: number;
  validationFraction: number;
  seed: number;
  /**
   * Demonstrations replayed in every batch: this many fine-tuning questions with their expected answers, each
   * a row with advantage `replayWeight`, so the policy term adds replayWeight × the fine-tuning loss on them.
   * It keeps the tasks the reward does not test from drifting (InstructGPT's "PPO-ptx" mixes in pretraining
   * data for the same reason). 0 rows: pure RL.
   */
  replayRows: number;
  replayWeight: number;
}

/** What one batch's samples scored, for plots. */
export interface SampledRewards {
  meanReward: number;
  byTask: Record<string, { reward: number; answers: number }>;
}

/**
 * The batches of reinforcement learning: each draws questions, samples `groupSize` answers to each from the
 * current model (with the KV cache), scores them with `reward`, and returns the rows of `answerRows` with each
 * answer's advantage and the reference model's log-probabilities, for `policyGradientObjective`.
 */
export class RewardSampler implements BatchSource {
  readonly train: VerifiableQuestion[];
  readonly validation: VerifiableQuestion[];
  /** One entry per batch drawn for training. */
  readonly history: SampledRewards[] = [];
  private readonly random: SplitRandom;

  /**
   * `questions`: what the reward is earned on. `demonstrations`: questions with their expected answers replayed
   * as fine-tuning rows (`options.replayRows` per batch); may be empty when replayRows is 0.
   */
  constructor(
    questions: readonly VerifiableQuestion[],
    private readonly demonstrations: readonly VerifiableQuestion[],
    private readonly tokenizer: Tokenizer,
    private readonly policy: GPT,
    private readonly reference: GPT,
    private readonly reward: (question: VerifiableQuestion, answer: string) => number,
    readonly options: RewardSamplerOptions,
  ) {
    if (options.replayRows > 0 && demonstrations.length === 0)
      throw new Error(`RewardSampler: replayRows is ${options.replayRows}, but no demonstrations were given.`);
    const validationCount = Math.round(questions.length * options.validationFraction);
    this.train = questions.slice(0, questions.length - validationCount);
    this.validation = questions.slice(questions.length - validationCount);
    this.random = new SplitRandom(options.seed);
  }

  async nextBatch(split: Split): Promise<Batch> {
    const { questionsPerBatch, groupSize, temperature, maxNewTokens } = this.options;
    const pool = split === "train" ? this.train : this.validation;
    const random = this.random[split];
    const ids = chatTokenIds(this.tokenizer);
    const rows: Array<{ history: ChatMessage[]; answer: string }> = [];
    const rewards: number[] = [];
    const byTask: SampledRewards["byTask"] = {};
    for (let q = 0; q < questionsPerBatch; q++) {
      const question = pool[random.int(pool.length)];
      const prompt = renderPrompt(this.tokenizer, question.history);
      const { tokens } = await generate(this.policy, prompt, {
        maxNewTokens,
        temperature,
        numSequences: groupSize,
        stopTokens: [ids.end, ids.user, ids.assistant, ids.system],
        seed: random.int(2 ** 31),
      });
      for (const answerTokens of tokens) {
        const answer = this.tokenizer.decode(answerTokens).trim();
        const score = this.reward(question, answer);
        rows.push({ history: question.history, answer });
        rewards.push(score);
        byTask[question.task] ??= { reward: 0, answers: 0 };
        const entry = byTask[question.task];
        entry.reward += score;
        entry.answers++;
      }
    }
    for (const entry of Object.values(byTask)) entry.reward /= entry.answers;
    if (split === "train")
      this.history.push({ meanReward: rewards.reduce((a, b) => a + b, 0) / rewards.length, byTask });
    const advantages = groupAdvantages(rewards, groupSize, this.options.divideByStd);
    for (let r = 0; r < this.options.replayRows; r++) {
      const demonstration = this.demonstrations[random.int(this.demonstrations.length)];
      rows.push({ history: demonstration.history, answer: demonstration.expected });
      advantages.push(this.options.replayWeight);
    }
    const { inputs, targets } = answerRows(this.tokenizer, rows, this.policy.config.contextLength);
    return {
      inputs,
      targets,
      reference: referenceLogProbabilities(this.reference, inputs, targets),
      advantages: tf.tensor1d(advantages),
    };
  }

  getState(): unknown {
    return this.random.getState();
  }

  setState(state: unknown): void {
    this.random.setState(state, "RewardSampler");
  }
}

/** The reward of the course's tasks: 1 for exactly the expected answer, 0 otherwise. */
export function exactAnswerReward(question: VerifiableQuestion, answer: string): number {
  return answer.trim() === question.expected.trim() ? 1 : 0;
}
