import { isShared } from "./wasm-module.js";

/**
 * Worker threads that run our WebAssembly kernels (gemm.ts, simd.ts) on the shared wasm heap, beside the
 * calling thread: how a matmul, an attention layer or a GELU uses every core.
 *
 * TensorFlow.js's threaded wasm build (backend/wasm-threads.ts) keeps the heap in a SharedArrayBuffer. Each
 * worker instantiates the same compiled kernel modules over that same memory, so it works on tensors in
 * place. A job is a list of independent kernel calls (each writes its own part of the output), written into
 * a shared buffer; the workers are woken with `Atomics.notify`, and then every thread, the caller included,
 * takes the next call not yet taken (an atomic counter) until none is left, and the caller waits until the
 * calls taken are finished. Whoever starts late (a worker waking up takes ~10-100 µs) or runs slower
 * simply takes fewer calls, so the callers cut their work into a few pieces per thread rather than one. No
 * message passing, no copies.
 *
 * Workers are unref'ed: they never keep a script alive, and die with the process.
 */

/** One call of a kernel: its export name, then its arguments (pointers, counts, float parameters). */
export type KernelCall = [kernel: string, ...args: number[]];

type Kernels = Record<string, (...args: number[]) => void>;

/**
 * The shared job: int32 words, then the calls' start offsets (int32), then the calls (float64 words). A call
 * is claimed by incrementing NEXT, which holds the job number (low 16 bits) above the next call's index, so
 * that a worker waking up late, after its job is over, cannot claim a call of the next one.
 */
const JOB = 0; // job number, incremented to wake the workers
const CALLS = 1; // calls in the job
const NEXT = 2; // (job & 0xffff) << 16 | next call to take
const FINISHED = 3; // calls finished
const FAILED = 4; // set by a worker whose kernel threw
const MAX_CALLS = 4096;
const STARTS_OFFSET = 4 * 8; // bytes
const CALLS_OFFSET = STARTS_OFFSET + 4 * MAX_CALLS; // a multiple of 8
const CALL_WORDS = 1 << 15; // float64 words of calls per job (256 KiB); longer lists go in several jobs
/**
 * Checks of the job number before an idle worker sleeps (a few hundred microseconds): a step's kernels
 * follow each other within milliseconds, and waking a sleeping thread takes longer than that spin.
 */
const SPIN = 50_000;

/** Claims the next call of `job` (its index), or returns −1 when there is none left. */
function claim(state: Int32Array, job: number, count: number): number {
  for (;;) {
    const next = Atomics.load(state, NEXT);
    const index = next & 0xffff;
    if (next >>> 16 !== (job & 0xffff) || index >= count) return -1;
    if (Atomics.compareExchange(state, NEXT, next, next + 1) === next) return index;
  }
}

/** The worker's program (CommonJS, run with `eval: true`). */
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const { memory, modules, names, control } = workerData;
const kernels = Object.assign({}, ...modules.map((module) => new WebAssembly.Instance(module, { env: { memory } }).exports));
const byIndex = names.map((name) => kernels[name]);
const state = new Int32Array(control);
const starts = new Int32Array(control, ${STARTS_OFFSET}, ${MAX_CALLS});
const words = new Float64Array(control, ${CALLS_OFFSET}, ${CALL_WORDS});
const NEXT = ${NEXT};
const claim = ${claim.toString()};
parentPort.postMessage("ready");
let job = 0;
for (;;) {
  for (let spin = 0; spin < ${SPIN} && Atomics.load(state, ${JOB}) === job; spin++);
  Atomics.wait(state, ${JOB}, job);
  job = Atomics.load(state, ${JOB});
  const count = Atomics.load(state, ${CALLS});
  for (let c = claim(state, job, count); c >= 0; c = claim(state, job, count)) {
    try {
      const at = starts[c];
      byIndex[words[at]](...words.subarray(at + 2, at + 2 + words[at + 1]));
    } catch (error) {
      state[${FAILED}] = 1;
    }
    if (Atomics.add(state, ${FINISHED}, 1) + 1 === count) Atomics.notify(state, ${FINISHED});
  }
}
`;

export class KernelThreads {
  private job = 0;
  /** Each kernel's index in `names` (what a call carries to the workers). */
  private readonly indices: Map<string, number>;
  private readonly state: Int32Array;
  private readonly starts: Int32Array;
  private readonly words: Float64Array;

  private constructor(
    readonly memory: WebAssembly.Memory,
    names: string[],
    control: SharedArrayBuffer,
    private readonly workers: number,
    private readonly local: Kernels,
  ) {
    this.indices = new Map(names.map((name, index) => [name, index]));
    this.state = new Int32Array(control);
    this.starts = new Int32Array(control, STARTS_OFFSET, MAX_CALLS);
    this.words = new Float64Array(control, CALLS_OFFSET, CALL_WORDS);
  }

  /** Threads in all: the workers and the calling thread. */
  get count(): number {
    return this.workers + 1;
  }

  /**
   * Starts `count − 1` workers over `memory` (which must be shared) with the kernels of `modules`, or
   * returns null where that is impossible (no worker threads, as in browsers; count < 2).
   */
  static async start(
    memory: WebAssembly.Memory,
    modules: WebAssembly.Module[],
    count: number,
  ): Promise<KernelThreads | null> {
    if (count < 2 || !isShared(memory)) return null;
    let Worker: typeof import("node:worker_threads").Worker;
    try {
      ({ Worker } = await import("node:worker_threads"));
    } catch {
      return null;
    }
    const workers = count - 1;
    const names = modules.flatMap((module) => WebAssembly.Module.exports(module).map((entry) => entry.name));
    const local: Kernels = Object.assign(
      {},
      ...modules.map((module) => new WebAssembly.Instance(module, { env: { memory } }).exports),
    );
    const control = new SharedArrayBuffer(CALLS_OFFSET + 8 * CALL_WORDS);
    const started: Promise<boolean>[] = [];
    for (let w = 0; w < workers; w++) {
      const worker = new Worker(workerSource, { eval: true, workerData: { memory, modules, names, control } });
      started.push(
        new Promise((resolve) => {
          worker.once("message", () => {
            worker.unref();
            resolve(true);
          });
          worker.once("error", () => resolve(false));
        }),
      );
    }
    // a worker that cannot instantiate the kernels would never answer: then no pool at all
    return (await Promise.all(started)).every(Boolean)
      ? new KernelThreads(memory, names, control, workers, local)
      : null;
  }

  /** Makes `calls` (independent of each other) on all threads at once; returns when all are done. */
  run(calls: KernelCall[]): void {
    for (let first = 0; first < calls.length; ) {
      const count = this.post(calls, first);
      let failure: unknown;
      for (let c = claim(this.state, this.job, count); c >= 0; c = claim(this.state, this.job, count)) {
        const [name, ...args] = calls[first + c];
        try {
          this.local[name](...args);
        } catch (error) {
          failure ??= error;
        }
        Atomics.add(this.state, FINISHED, 1);
      }
      // the calls the workers took: wait until they are finished (briefly spinning, then sleeping)
      for (let spin = 0; spin < SPIN && Atomics.load(this.state, FINISHED) !== count; spin++);
      for (let done = Atomics.load(this.state, FINISHED); done !== count; done = Atomics.load(this.state, FINISHED)) {
        Atomics.wait(this.state, FINISHED, done);
      }
      const workerFailed = this.state[FAILED] !== 0;
      this.state[FAILED] = 0;
      if (failure !== undefined) throw failure;
      if (workerFailed) {
        throw new Error(
          `KernelThreads: a kernel failed on a worker thread, in one of these calls: ${JSON.stringify(calls.slice(first, first + count))}`,
        );
      }
      first += count;
    }
  }

  /** Writes as many calls from calls[first] on as fit into the shared job, and wakes the workers. */
  private post(calls: KernelCall[], first: number): number {
    let at = 0;
    let count = 0;
    for (let c = first; c < calls.length && count < MAX_CALLS; c++) {
      const call = calls[c];
      const argCount = call.length - 1;
      if (at + 2 + argCount > CALL_WORDS) break;
      const index = this.indices.get(call[0]);
      if (index === undefined) throw new Error(`KernelThreads: no kernel named ${call[0]}`);
      this.starts[count++] = at;
      this.words[at] = index;
      this.words[at + 1] = argCount;
      for (let a = 1; a <= argCount; a++) this.words[at + 1 + a] = call[a] as number;
      at += 2 + argCount;
    }
    // NEXT first: from then on, a worker still holding an earlier job number claims nothing (it may read the
    // new CALLS), and JOB last: a worker that sees the new job number sees everything before it
    const job = ++this.job;
    Atomics.store(this.state, NEXT, (job & 0xffff) << 16);
    Atomics.store(this.state, CALLS, count);
    Atomics.store(this.state, FINISHED, 0);
    Atomics.store(this.state, JOB, job);
    Atomics.notify(this.state, JOB);
    return count;
  }
}

let running: KernelThreads | null = null;

/** Makes `threads` the pool the kernels use (null: none, everything on the calling thread). */
export function setKernelThreads(threads: KernelThreads | null): void {
  running = threads;
}

/**
 * The pool for kernels working on `memory`, if one is running and the job is worth it: `work` at least
 * `minimum` (in the caller's units; a hand-over costs ~10-100 µs, so a job should take a good deal more).
 */
export function kernelThreads(memory: WebAssembly.Memory | undefined, work = 1, minimum = 0): KernelThreads | null {
  return memory !== undefined && running?.memory === memory && work >= minimum ? running : null;
}

/** Makes `calls` (independent: they write disjoint memory) on all threads, or one after the other on `local`. */
export function runShared(threads: KernelThreads | null, local: object, calls: KernelCall[]): void {
  if (threads === null || calls.length < 2) {
    for (const [name, ...args] of calls) (local as Kernels)[name](...args);
    return;
  }
  threads.run(calls);
}

/**
 * Pieces of work per thread: enough for a late or slow thread to take fewer. The caller waits at the end of
 * each job for the last piece a worker took; a training step runs ~140 jobs, and 8 pieces per thread rather
 * than 4 cut that waiting from 10-18 to 9-11 ms a step (bench/NOTES.md).
 */
const PIECES_PER_THREAD = 8;

/**
 * Work done before piece p of `pieces`, in units of the last piece's size: the pieces shrink linearly, the
 * first `pieces` units long, the last one (Σ_{i<p} (pieces − i)). The threads take them in order, so the
 * large ones go first and the ones a thread may still be busy with when the others run out are small: the
 * caller's wait at the end of a job is then about half the last piece, 1/272 of the job with 16 pieces
 * rather than 1/32 (a reference training step: 6.8-8.3 → 2.6-3.7 ms of waiting).
 */
function workBefore(p: number, pieces: number): number {
  return p * pieces - (p * (p - 1)) / 2;
}

/** How many pieces `rangeCalls` cuts work into. */
export function pieceCount(threads: KernelThreads | null): number {
  return threads === null ? 1 : threads.count * PIECES_PER_THREAD;
}

/**
 * Work on items 0 … n−1 cut into a few pieces per thread (one piece without threads), largest first (see
 * `workBefore`), piece starts multiples of `align`: `call(from, count, piece)` gives the call for items
 * from … from + count − 1.
 */
export function rangeCalls(
  threads: KernelThreads | null,
  n: number,
  align: number,
  call: (from: number, count: number, piece: number) => KernelCall,
): KernelCall[] {
  const pieces = pieceCount(threads);
  const total = workBefore(pieces, pieces);
  const bounds = Array.from({ length: pieces + 1 }, (_, p) =>
    p === pieces ? n : align * Math.floor((n * workBefore(p, pieces)) / total / align),
  );
  const calls: KernelCall[] = [];
  for (let p = 0; p < pieces; p++)
    if (bounds[p + 1] > bounds[p]) calls.push(call(bounds[p], bounds[p + 1] - bounds[p], calls.length));
  return calls;
}
