import * as tf from "@tensorflow/tfjs";
import { IGNORE_INDEX } from "../training/loss.js";
import type { Batch, BatchSource, Split } from "../training/data.js";
import { Random } from "../utils/random.js";
import type { RenderedConversation } from "./chat-template.js";

export interface ConversationDatasetOptions {
  batchSize: number; // B: conversations per batch, one per row
  maxLength: number; // longest conversation accepted, in tokens: the model's contextLength + 1
  bucketBatches: number; // batches drawn at once and grouped by length, so that rows need little padding
  seed: number; // seeds the order in which conversations are visited
}

/**
 * Batches of rendered conversations for supervised fine-tuning (SFT), for the same Trainer that
 * pretrains.
 *
 * One conversation per row, starting at position 0 as it will when the model chats, padded to the
 * longest conversation of its batch. (Packing several conversations into a row would waste no padding,
 * but the model would then learn to answer at every position offset and could look back into another
 * conversation; with learned position embeddings and a few minutes of training, answering at the
 * positions it will be asked at is what counts.) To keep padding small, `bucketBatches` batches' worth of
 * conversations are drawn at a time, sorted by length and cut into batches: each batch holds conversations
 * of about the same length.
 *
 * Targets, the loss mask: as in pretraining, a row's targets are its tokens shifted by one,
 * target[t] = token[t + 1], but only where token[t + 1] is an assistant token. Everywhere else (system
 * and user text, role markers, padding) the target is IGNORE_INDEX, which the cross-entropy skips: the
 * model is graded only on what it will have to write, not on predicting the user's question.
 *
 * Order: each split walks through its conversations in a seeded shuffled order, reshuffled after every
 * pass (epoch). The state (where the current group of batches started, and how many of its batches were
 * used) goes into checkpoints, so a resumed run sees exactly the batches the uninterrupted run would have.
 */
export class ConversationDataset implements BatchSource {
  readonly options: ConversationDatasetOptions;
  private readonly splits: Record<Split, BatchQueue>;

  constructor(
    conversations: Record<Split, readonly RenderedConversation[]>,
    options: Partial<ConversationDatasetOptions> & { maxLength: number },
  ) {
    this.options = { batchSize: 16, bucketBatches: 8, seed: 1337, ...options };
    const { maxLength, batchSize, bucketBatches, seed } = this.options;
    for (const [name, value] of Object.entries({ maxLength, batchSize, bucketBatches })) {
      if (!Number.isInteger(value) || value < (name === "maxLength" ? 2 : 1)) {
        throw new Error(`ConversationDataset: ${name} must be an integer ≥ ${name === "maxLength" ? 2 : 1}, got ${value}.`);
      }
    }
    for (const split of ["train", "validation"] as const) checkConversations(conversations[split], split, maxLength);
    this.splits = {
      train: new BatchQueue(new ConversationStream(conversations.train, seed), batchSize, bucketBatches),
      validation: new BatchQueue(new ConversationStream(conversations.validation, seed + 1), batchSize, bucketBatches),
    };
  }

  nextBatch(split: Split): Batch {
    const conversations = this.splits[split].next();
    const B = conversations.length;
    const T = Math.max(...conversations.map(({ ids }) => ids.length)) - 1; // a row of T inputs holds T + 1 tokens
    const inputs = new Int32Array(B * T); // padding inputs are 0: causal attention keeps real positions from seeing them
    const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
    conversations.forEach(({ ids, assistantMask }, b) => {
      for (let t = 0; t < ids.length; t++) {
        if (t < T) inputs[b * T + t] = ids[t];
        if (t > 0 && assistantMask[t] === 1) targets[b * T + t - 1] = ids[t]; // predicted from position t - 1
      }
    });
    return { inputs: tf.tensor2d(inputs, [B, T], "int32"), targets: tf.tensor2d(targets, [B, T], "int32") };
  }

  getState(): Record<Split, QueueState> {
    return { train: this.splits.train.getState(), validation: this.splits.validation.getState() };
  }

  setState(state: unknown): void {
    const { train, validation } = (state ?? {}) as Partial<Record<Split, QueueState>>;
    if (!isQueueState(train) || !isQueueState(validation)) throw new Error("ConversationDataset.setState: malformed state.");
    this.splits.train.setState(train);
    this.splits.validation.setState(validation);
  }
}

interface StreamState {
  random: number; // generator state before this pass's shuffle
  position: number; // conversations of this pass already drawn
}

interface QueueState {
  stream: StreamState; // where the current group of batches was drawn from
  used: number; // batches of the group already handed out
}

function isQueueState(value: unknown): value is QueueState {
  const state = value as QueueState;
  return (
    typeof state === "object" && state !== null && Number.isInteger(state.used) && typeof state.stream === "object" && state.stream !== null &&
    Number.isInteger(state.stream.random) && Number.isInteger(state.stream.position)
  );
}

/** Batches of similar-length conversations: `bucketBatches` batches are drawn at once and sorted by length. */
class BatchQueue {
  private batches: RenderedConversation[][] = [];
  private groupStart: StreamState;
  private used = 0;

  constructor(
    private readonly stream: ConversationStream,
    private readonly batchSize: number,
    private readonly bucketBatches: number,
  ) {
    this.groupStart = stream.getState();
  }

  next(): RenderedConversation[] {
    if (this.used === this.batches.length) this.drawGroup();
    return this.batches[this.used++];
  }

  getState(): QueueState {
    return { stream: { ...this.groupStart }, used: this.used };
  }

  setState(state: QueueState): void {
    this.stream.setState(state.stream);
    this.drawGroup();
    this.used = state.used;
  }

  private drawGroup(): void {
    this.groupStart = this.stream.getState();
    const group = Array.from({ length: this.batchSize * this.bucketBatches }, () => this.stream.next());
    group.sort((a, b) => a.ids.length - b.ids.length); // stable: equal lengths keep their shuffled order
    this.batches = Array.from({ length: this.bucketBatches }, (_, i) => group.slice(i * this.batchSize, (i + 1) * this.batchSize));
    this.used = 0;
  }
}

/** Conversations of one split in a shuffled order that is reshuffled after each pass. */
class ConversationStream {
  private readonly random: Random;
  private order: number[] = [];
  private passStart = 0; // generator state this pass's order was shuffled with
  private position = 0;

  constructor(
    private readonly conversations: readonly RenderedConversation[],
    seed: number,
  ) {
    this.random = new Random(seed);
    this.shuffle();
  }

  next(): RenderedConversation {
    if (this.position === this.order.length) this.shuffle();
    return this.conversations[this.order[this.position++]];
  }

  getState(): StreamState {
    return { random: this.passStart, position: this.position };
  }

  setState(state: StreamState): void {
    this.random.setState(state.random);
    this.shuffle();
    if (state.position > this.order.length) throw new Error("ConversationDataset.setState: the state is from a different data set.");
    this.position = state.position;
  }

  private shuffle(): void {
    this.passStart = this.random.getState();
    this.order = this.random.shuffle(Array.from({ length: this.conversations.length }, (_, i) => i));
    this.position = 0;
  }
}

function checkConversations(conversations: readonly RenderedConversation[], split: Split, maxLength: number): void {
  if (conversations.length === 0) throw new Error(`ConversationDataset: the ${split} split has no conversations.`);
  conversations.forEach(({ ids, assistantMask }, i) => {
    if (ids.length !== assistantMask.length) {
      throw new Error(`ConversationDataset: ${split} conversation ${i} has ${ids.length} ids but ${assistantMask.length} mask values.`);
    }
    if (ids.length > maxLength) {
      throw new Error(
        `ConversationDataset: ${split} conversation ${i} is ${ids.length} tokens long, more than maxLength ${maxLength} ` +
          "(the model's contextLength + 1). Shorten it or leave it out.",
      );
    }
    if (ids.length < 2 || !assistantMask.includes(1)) {
      throw new Error(`ConversationDataset: ${split} conversation ${i} has no assistant tokens, so there is nothing to learn from it.`);
    }
  });
}
