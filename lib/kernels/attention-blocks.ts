/**
 * What the fused attention kernels (attention.ts) share: the dimensions of a call, which keys each query may
 * see, and the blocks of queries and keys the block-by-block path works on.
 */
import * as tf from "@tensorflow/tfjs";

/** Scores (B · nh · Tq · Tk) from which the block loops are shared out among the kernel threads. */
export const PARALLEL_SCORES = 1 << 15;

export interface Dims {
  batch: number; // product of the leading dimensions (B · nh)
  Tq: number;
  Tk: number;
  hs: number;
  hv: number;
}

/**
 * Which keys each query may see: with `causal`, key j ≤ i + Tk − Tq; with `documents` (int32 (B, T),
 * Tq = Tk = T, `batch` = B · nh), only keys of the query's own document.
 */
export interface Visibility {
  causal: boolean;
  documents?: Int32Array;
}

export function dimsOf(q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo): Dims {
  const r = q.shape.length;
  return {
    batch: tf.util.sizeFromShape(q.shape.slice(0, -2)),
    Tq: q.shape[r - 2],
    Tk: k.shape[r - 2],
    hs: q.shape[r - 1],
    hv: v.shape[r - 1],
  };
}

/**
 * A block of queries and the block of keys they may see: queries q0 … q0 + rows − 1 against keys
 * k0 … k0 + keys − 1, where query i of the block sees key j of the block when j ≤ i + above (causal:
 * above = keys − rows; not causal: above = keys, every key).
 */
export interface Block {
  q0: number;
  k0: number;
  rows: number;
  keys: number;
  above: number;
}

/**
 * The blocks of each row of document ids (or a single list for every entry when there are no documents):
 * one block per document, since a query sees only its own document; without documents, one block of all
 * queries and keys. Undefined where the block path does not apply (it then uses the full-row path): head
 * sizes that are not a multiple of 4 (the SIMD kernels' width), causal with more queries than keys (some
 * queries would see no key at all), or a document whose positions are not contiguous.
 */
export function attentionBlocks(dims: Dims, { causal, documents }: Visibility): Block[][] | undefined {
  const { Tq, Tk, hs, hv } = dims;
  if (hs % 4 !== 0 || hv % 4 !== 0 || (causal && Tq > Tk)) return undefined;
  if (!documents) return [[{ q0: 0, k0: 0, rows: Tq, keys: Tk, above: causal ? Tk - Tq : Tk }]];
  const rows: Block[][] = [];
  for (let rowStart = 0; rowStart < documents.length; rowStart += Tk) {
    const blocks: Block[] = [];
    const seen = new Set<number>();
    for (let start = 0; start < Tk; ) {
      const id = documents[rowStart + start];
      if (seen.has(id)) return undefined; // a document in two pieces
      seen.add(id);
      let end = start + 1;
      while (end < Tk && documents[rowStart + end] === id) end++;
      const length = end - start;
      blocks.push({ q0: start, k0: start, rows: length, keys: length, above: causal ? 0 : length });
      start = end;
    }
    rows.push(blocks);
  }
  return rows;
}

/** Calls f for every block of every (batch, head) entry b; entries are (B, nh) flattened, nh per row of ids. */
export function forEachBlock(batch: number, blocks: Block[][], f: (b: number, block: Block) => void): void {
  for (let b = 0; b < batch; b++) {
    for (const block of blocks[Math.floor((b * blocks.length) / batch)]) f(b, block);
  }
}
