import * as tf from "@tensorflow/tfjs";
import { IGNORE_INDEX } from "../training/loss.js";
import type { Batch, BatchSource, Split } from "../training/data.js";
import { Random } from "../utils/random.js";
import type { RenderedConversation } from "./chat-template.js";

export interface ConversationDatasetOptions {
  batchSize: number; // B: rows per batch, each packed with whole conversations
  maxLength: number; // longest conversation accepted, in tokens: the model's contextLength + 1 (a row's T + 1)
  seed: number; // seeds the order in which conversations are visited
}

/**
 * Batches of rendered conversations for supervised fine-tuning (SFT), for the same Trainer that
 * pretrains.
 *
 * Packing: conversations are short (a question and its answer) and of very different lengths, so one
 * conversation per row would leave most of a batch as padding, and sorting by length to avoid that makes
 * every batch one task (length follows the task), which slows learning badly. Instead each row of
 * T = maxLength − 1 positions is filled with whole conversations end to end, in shuffled order, until the
 * next one does not fit (it opens the next row; the rest of the row is padding). Two things keep a packed
 * row equivalent to separate rows, one conversation each:
 * - document ids: attention stays inside a conversation (a block-diagonal causal mask), so no
 *   conversation sees the one before it;
 * - positions restart at 0 with each conversation, as they will when the model chats.
 * Both go to the model with the batch (`Batch.documents`).
 *
 * Targets, the loss mask: as in pretraining, targets are the tokens shifted by one, target[t] = token[t + 1]
 * within a conversation, but only where token[t + 1] is an assistant token. Everywhere else (system and
 * user text, role markers, padding) the target is IGNORE_INDEX, which the cross-entropy skips: the model
 * is graded only on what it will have to write, not on predicting the user's question.
 *
 * Order: each split walks through its conversations in a seeded shuffled order, reshuffled after every
 * pass (epoch). Its state (the generator state of the pass and how far it got) goes into checkpoints, so a
 * resumed run sees exactly the batches the uninterrupted run would have.
 */
export class ConversationDataset implements BatchSource {
  readonly options: ConversationDatasetOptions;
  private readonly streams: Record<Split, ConversationStream>;

  constructor(
    conversations: Record<Split, readonly RenderedConversation[]>,
    options: Partial<ConversationDatasetOptions> & { maxLength: number },
  ) {
    this.options = { batchSize: 8, seed: 1337, ...options };
    const { maxLength, batchSize, seed } = this.options;
    for (const [name, value] of Object.entries({ maxLength, batchSize })) {
      if (!Number.isInteger(value) || value < (name === "maxLength" ? 2 : 1)) {
        throw new Error(
          `ConversationDataset: ${name} must be an integer ≥ ${name === "maxLength" ? 2 : 1}, got ${value}.`,
        );
      }
    }
    for (const split of ["train", "validation"] as const) checkConversations(conversations[split], split, maxLength);
    this.streams = {
      train: new ConversationStream(conversations.train, seed),
      validation: new ConversationStream(conversations.validation, seed + 1),
    };
  }

  nextBatch(split: Split): Batch {
    const rows = Array.from({ length: this.options.batchSize }, () => this.packRow(this.streams[split]));
    const B = rows.length;
    const T = Math.max(...rows.map((row) => row.reduce((length, { ids }) => length + ids.length - 1, 0))); // longest row
    const inputs = new Int32Array(B * T); // padding: token 0 in a document of its own (−1), never a target
    const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
    const documentIds = new Int32Array(B * T).fill(-1);
    const positions = new Int32Array(B * T);
    rows.forEach((row, b) => {
      let start = b * T; // where the next conversation begins
      row.forEach(({ ids, assistantMask }, document) => {
        for (let t = 0; t < ids.length - 1; t++) {
          // a conversation of n tokens fills n − 1 positions: its last token is only ever a target
          inputs[start + t] = ids[t];
          documentIds[start + t] = document;
          positions[start + t] = t;
          if (assistantMask[t + 1] === 1) targets[start + t] = ids[t + 1];
        }
        start += ids.length - 1;
      });
    });
    const tensor = (values: Int32Array) => tf.tensor2d(values, [B, T], "int32");
    return {
      inputs: tensor(inputs),
      targets: tensor(targets),
      documents: { documentIds: tensor(documentIds), positions: tensor(positions) },
    };
  }

  /** Whole conversations, in stream order, as many as fit in a row of maxLength − 1 positions. */
  private packRow(stream: ConversationStream): RenderedConversation[] {
    const row: RenderedConversation[] = [];
    let free = this.options.maxLength - 1;
    while (stream.peek().ids.length - 1 <= free) {
      const conversation = stream.next();
      row.push(conversation);
      free -= conversation.ids.length - 1;
    }
    return row;
  }

  getState(): Record<Split, StreamState> {
    return { train: this.streams.train.getState(), validation: this.streams.validation.getState() };
  }

  setState(state: unknown): void {
    const { train, validation } = (state ?? {}) as Partial<Record<Split, StreamState>>;
    if (!isStreamState(train) || !isStreamState(validation))
      throw new Error("ConversationDataset.setState: malformed state.");
    this.streams.train.setState(train);
    this.streams.validation.setState(validation);
  }
}

interface StreamState {
  random: number; // generator state before this pass's shuffle
  position: number; // conversations of this pass already drawn
}

function isStreamState(value: unknown): value is StreamState {
  const state = value as StreamState;
  return (
    typeof state === "object" && state !== null && Number.isInteger(state.random) && Number.isInteger(state.position)
  );
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

  /** The conversation `next()` will return. */
  peek(): RenderedConversation {
    if (this.position === this.order.length) this.shuffle();
    return this.conversations[this.order[this.position]];
  }

  next(): RenderedConversation {
    const conversation = this.peek();
    this.position++;
    return conversation;
  }

  getState(): StreamState {
    return { random: this.passStart, position: this.position };
  }

  setState(state: StreamState): void {
    this.random.setState(state.random);
    this.shuffle();
    if (state.position > this.order.length)
      throw new Error("ConversationDataset.setState: the state is from a different data set.");
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
      throw new Error(
        `ConversationDataset: ${split} conversation ${i} has ${ids.length} ids but ${assistantMask.length} mask values.`,
      );
    }
    if (ids.length > maxLength) {
      throw new Error(
        `ConversationDataset: ${split} conversation ${i} is ${ids.length} tokens long, more than maxLength ${maxLength} ` +
          "(the model's contextLength + 1). Shorten it or leave it out.",
      );
    }
    if (ids.length < 2 || !assistantMask.includes(1)) {
      throw new Error(
        `ConversationDataset: ${split} conversation ${i} has no assistant tokens, so there is nothing to learn from it.`,
      );
    }
  });
}
