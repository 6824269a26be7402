import * as tf from "@tensorflow/tfjs";
import { IGNORE_INDEX } from "../training/loss.js";
import type { Batch, BatchSource, Split } from "../training/data.js";
import { Random } from "../utils/random.js";
import type { RenderedConversation } from "./chat-template.js";

export interface ConversationDatasetOptions {
  batchSize: number; // conversations per batch: one per row, or (packed) as many per row as fit
  maxLength: number; // longest conversation accepted, in tokens: the model's contextLength + 1
  bucketBatches: number; // unpacked: batches drawn at once and grouped by length, so that rows need little padding
  pack: boolean; // fill each row of maxLength - 1 tokens with whole conversations, one after another
  seed: number; // seeds the order in which conversations are visited
}

/**
 * Batches of rendered conversations for supervised fine-tuning (SFT), for the same Trainer that
 * pretrains. Two ways to lay conversations out in a batch:
 *
 * - One conversation per row (the default), starting at position 0 as it will when the model chats, padded
 *   to the longest conversation of its batch. To keep padding small, `bucketBatches` batches' worth of
 *   conversations are drawn at a time, sorted by length and cut into batches. The catch: length follows the
 *   task (additions are short, two-question conversations long), so each batch holds mostly one task.
 * - Packed (`pack: true`): the batch's conversations are laid end to end in rows of maxLength - 1 tokens,
 *   in the shuffled order; one that does not fit starts the next row. Little padding, and
 *   every batch is a fair mix of tasks. A conversation further along a row can look back at the ones before
 *   it, as GPT pretraining looks back across document boundaries; its role tokens say where it starts.
 *   Measured (data/README.md): with length-sorted batches additions stayed at 7-9% while random mixes of
 *   the same data reached 50% in fewer steps; packing gets the mix without paying for padding.
 *
 * Targets, the loss mask: as in pretraining, a token's target is the token after it, target[t] =
 * token[t + 1], but only where token[t + 1] is an assistant token of the same conversation. Everywhere else
 * (system and user text, role markers, padding, the last token of a conversation) the target is
 * IGNORE_INDEX, which the cross-entropy skips: the model is graded only on what it will have to write, not
 * on predicting the user's question.
 *
 * Order: each split walks through its conversations in a seeded shuffled order, reshuffled after every
 * pass (epoch). The state (where the current group of batches started, and how many of its batches were
 * used) goes into checkpoints, so a resumed run sees exactly the batches the uninterrupted run would have.
 */
export class ConversationDataset implements BatchSource {
  readonly options: ConversationDatasetOptions;
  private readonly splits: Record<Split, BatchQueue | PackedRows>;

  constructor(
    conversations: Record<Split, readonly RenderedConversation[]>,
    options: Partial<ConversationDatasetOptions> & { maxLength: number },
  ) {
    this.options = { batchSize: 16, bucketBatches: 8, pack: false, seed: 1337, ...options };
    const { maxLength, batchSize, bucketBatches, pack, seed } = this.options;
    for (const [name, value] of Object.entries({ maxLength, batchSize, bucketBatches })) {
      if (!Number.isInteger(value) || value < (name === "maxLength" ? 2 : 1)) {
        throw new Error(`ConversationDataset: ${name} must be an integer ≥ ${name === "maxLength" ? 2 : 1}, got ${value}.`);
      }
    }
    // Packed, every token of a conversation is an input (its last one too), so a row holds maxLength - 1.
    for (const split of ["train", "validation"] as const) checkConversations(conversations[split], split, pack ? maxLength - 1 : maxLength);
    const queue = (stream: ConversationStream) =>
      pack ? new PackedRows(stream, batchSize, maxLength - 1) : new BatchQueue(stream, batchSize, bucketBatches);
    this.splits = {
      train: queue(new ConversationStream(conversations.train, seed)),
      validation: queue(new ConversationStream(conversations.validation, seed + 1)),
    };
  }

  nextBatch(split: Split): Batch {
    const queue = this.splits[split];
    if (queue instanceof PackedRows) return packedBatch(queue.next());
    const conversations = queue.next();
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

/** `batchSize` conversations packed end to end into as few rows as their order allows (`pack: true`). */
class PackedRows {
  constructor(
    private readonly stream: ConversationStream,
    private readonly batchSize: number,
    private readonly rowLength: number, // tokens per row: the model's context
  ) {}

  next(): RenderedConversation[][] {
    const rows: RenderedConversation[][] = [];
    let used = this.rowLength; // no open row yet
    for (let i = 0; i < this.batchSize; i++) {
      const conversation = this.stream.next();
      if (used + conversation.ids.length > this.rowLength) {
        rows.push([]); // it does not fit: start a new row
        used = 0;
      }
      rows[rows.length - 1].push(conversation);
      used += conversation.ids.length;
    }
    return rows;
  }

  /** Packing draws whole batches from the stream, so where the stream stands is the whole state. */
  getState(): QueueState {
    return { stream: this.stream.getState(), used: 0 };
  }

  setState(state: QueueState): void {
    this.stream.setState(state.stream);
  }
}

/** The tensors of packed rows: each conversation's targets stay inside it. */
function packedBatch(rows: RenderedConversation[][]): Batch {
  const B = rows.length;
  const T = Math.max(...rows.map((row) => row.reduce((used, { ids }) => used + ids.length, 0))); // the fullest row
  const inputs = new Int32Array(B * T); // what is left of a row is padding: causal attention keeps it out of sight
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  rows.forEach((row, b) => {
    let start = b * T;
    for (const { ids, assistantMask } of row) {
      for (let t = 0; t < ids.length; t++) {
        inputs[start + t] = ids[t];
        if (t + 1 < ids.length && assistantMask[t + 1] === 1) targets[start + t] = ids[t + 1]; // never the next conversation's first token
      }
      start += ids.length;
    }
  });
  return { inputs: tf.tensor2d(inputs, [B, T], "int32"), targets: tf.tensor2d(targets, [B, T], "int32") };
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
        `ConversationDataset: ${split} conversation ${i} is ${ids.length} tokens long, more than the ${maxLength} that fit ` +
          "(maxLength, the model's contextLength + 1; a packed row holds one token less). Shorten it or leave it out.",
      );
    }
    if (ids.length < 2 || !assistantMask.includes(1)) {
      throw new Error(`ConversationDataset: ${split} conversation ${i} has no assistant tokens, so there is nothing to learn from it.`);
    }
  });
}
