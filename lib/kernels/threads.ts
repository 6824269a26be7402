/**
 * Worker threads that run our WebAssembly kernels (gemm.ts, simd.ts) on the shared wasm heap, beside the
 * calling thread: how a matmul, an attention layer or a GELU uses every core.
 *
 * TensorFlow.js's threaded wasm build (backend/wasm-threads.ts) keeps the heap in a SharedArrayBuffer. Each
 * worker instantiates the same compiled kernel modules over that same memory, so it works on tensors in
 * place. A worker sleeps in `Atomics.wait` on its own control block; `run` writes a list of kernel calls
 * (kernel index, argument count, arguments) into each block, wakes the workers with `Atomics.notify`, makes
 * the caller's own calls, then waits until every worker has marked the job done. No message passing, no
 * copies: a hand-over costs tens of microseconds, against milliseconds of work in a Linear layer's matmul.
 *
 * Workers are unref'ed: they never keep a script alive, and die with the process.
 */

/** One call of a kernel: its export name, then its arguments (pointers, counts, float parameters). */
export type KernelCall = [kernel: string, ...args: number[]];

type Kernels = Record<string, (...args: number[]) => void>;

/** A worker's control block: int32 words JOB (job number), CALLS (calls in it), DONE (last job done), FAILED. */
const JOB = 0;
const CALLS = 1;
const DONE = 2;
const FAILED = 3;
const CALLS_OFFSET = 64; // bytes; then per call: kernel index, argument count, arguments, all float64
const CALL_CAPACITY = 1 << 15; // float64 words of calls per job (256 KiB); longer lists go in several jobs
/**
 * Checks of the job number before a waiting thread sleeps (a few hundred microseconds): a step's kernels
 * follow each other within milliseconds, and waking a sleeping thread takes longer than that spin.
 */
const SPIN = 50_000;

/** The worker's program (CommonJS, run with `eval: true`). */
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const { memory, modules, names, control } = workerData;
const kernels = Object.assign({}, ...modules.map((module) => new WebAssembly.Instance(module, { env: { memory } }).exports));
const byIndex = names.map((name) => kernels[name]);
const state = new Int32Array(control);
const calls = new Float64Array(control, ${CALLS_OFFSET}, ${CALL_CAPACITY});
parentPort.postMessage("ready");
let job = 0;
for (;;) {
  for (let spin = 0; spin < ${SPIN} && Atomics.load(state, ${JOB}) === job; spin++);
  Atomics.wait(state, ${JOB}, job);
  job = Atomics.load(state, ${JOB});
  try {
    for (let c = 0, at = 0; c < state[${CALLS}]; c++) {
      const count = calls[at + 1];
      byIndex[calls[at]](...calls.subarray(at + 2, at + 2 + count));
      at += 2 + count;
    }
  } catch (error) {
    state[${FAILED}] = 1;
  }
  Atomics.store(state, ${DONE}, job);
  Atomics.notify(state, ${DONE});
}
`;

export class KernelThreads {
  private job = 0;

  private constructor(
    readonly memory: WebAssembly.Memory,
    private readonly names: string[],
    private readonly controls: Int32Array[],
    private readonly local: Kernels,
  ) {}

  /** Threads in all: the workers and the calling thread. */
  get count(): number {
    return this.controls.length + 1;
  }

  /**
   * Starts `count − 1` workers over `memory` (which must be shared) with the kernels of `modules`, or
   * returns null where that is impossible (no worker threads, as in browsers; count < 2).
   */
  static async start(memory: WebAssembly.Memory, modules: WebAssembly.Module[], count: number): Promise<KernelThreads | null> {
    if (count < 2 || !(memory.buffer instanceof SharedArrayBuffer)) return null;
    let Worker: typeof import("node:worker_threads").Worker;
    try {
      ({ Worker } = await import("node:worker_threads"));
    } catch {
      return null;
    }
    const names = modules.flatMap((module) => WebAssembly.Module.exports(module).map((entry) => entry.name));
    const local: Kernels = Object.assign({}, ...modules.map((module) => new WebAssembly.Instance(module, { env: { memory } }).exports));
    const controls: Int32Array[] = [];
    const started: Promise<boolean>[] = [];
    for (let w = 1; w < count; w++) {
      const control = new SharedArrayBuffer(CALLS_OFFSET + 8 * CALL_CAPACITY);
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
      controls.push(new Int32Array(control));
    }
    // a worker that cannot instantiate the kernels would never answer: then no pool at all
    return (await Promise.all(started)).every(Boolean) ? new KernelThreads(memory, names, controls, local) : null;
  }

  /**
   * Makes the calls of shares[0] on the calling thread and those of shares[w] on worker w − 1, in order
   * within a share, all shares at once; returns when all are done.
   */
  run(shares: KernelCall[][]): void {
    if (shares.length > this.count) throw new Error(`KernelThreads: ${shares.length} shares of work for ${this.count} threads`);
    const pending = shares.slice(1).map((calls) => calls.slice());
    let own: KernelCall[] = shares[0] ?? [];
    while (own.length > 0 || pending.some((calls) => calls.length > 0)) {
      const job = ++this.job;
      const busy = pending.map((calls, w) => calls.length > 0 && this.post(w, calls, job));
      const g = globalThis as any; g.T ??= { own: 0, wait: 0, n: 0 }; const t0 = performance.now();
      try {
        for (const [name, ...args] of own) this.local[name](...args);
        own = [];
      } finally {
        const t1 = performance.now();
        busy.forEach((posted, w) => posted && this.waitFor(w, job));
        g.T.own += t1 - t0; g.T.wait += performance.now() - t1; g.T.n++;
      }
      busy.forEach((posted, w) => {
        if (posted && this.controls[w][FAILED]) {
          this.controls[w][FAILED] = 0;
          throw new Error("KernelThreads: a kernel failed on a worker thread (see the calls in the stack trace's caller)");
        }
      });
    }
  }

  /** Writes as many of `calls` as fit into worker w's block (removing them from the list) and wakes it. */
  private post(w: number, calls: KernelCall[], job: number): boolean {
    const state = this.controls[w];
    const words = new Float64Array(state.buffer, CALLS_OFFSET, CALL_CAPACITY);
    let at = 0;
    let count = 0;
    for (const [name, ...args] of calls) {
      if (at + 2 + args.length > CALL_CAPACITY) break;
      const index = this.names.indexOf(name);
      if (index < 0) throw new Error(`KernelThreads: no kernel named ${name}`);
      words[at] = index;
      words[at + 1] = args.length;
      words.set(args, at + 2);
      at += 2 + args.length;
      count++;
    }
    calls.splice(0, count);
    state[CALLS] = count;
    Atomics.store(state, JOB, job);
    Atomics.notify(state, JOB);
    return true;
  }

  private waitFor(w: number, job: number): void {
    const state = this.controls[w];
    for (let spin = 0; spin < SPIN && Atomics.load(state, DONE) !== job; spin++);
    for (let done = Atomics.load(state, DONE); done !== job; done = Atomics.load(state, DONE)) Atomics.wait(state, DONE, done);
  }
}

let running: KernelThreads | null = null;

/** Makes `threads` the pool the kernels use (null: none, everything on the calling thread). */
export function setKernelThreads(threads: KernelThreads | null): void {
  running = threads;
}

/**
 * The pool for kernels working on `memory`, if one is running and the job is worth it: `work` at least
 * `minimum` (in the caller's units; a hand-over costs ~20-50 µs, so a job should take a good deal more).
 */
export function kernelThreads(memory: WebAssembly.Memory | undefined, work = 1, minimum = 0): KernelThreads | null {
  return memory !== undefined && running?.memory === memory && work >= minimum ? running : null;
}

/**
 * Makes `calls` (independent of each other: they write disjoint memory) on all threads at once, cut into
 * consecutive shares of about equal `cost`; without threads, one after the other on `local`.
 */
export function runShared(threads: KernelThreads | null, local: object, calls: KernelCall[], cost: (call: KernelCall) => number = () => 1): void {
  if (threads === null || calls.length < 2) {
    for (const [name, ...args] of calls) (local as Kernels)[name](...args);
    return;
  }
  const costs = calls.map(cost);
  const total = costs.reduce((sum, c) => sum + c, 0);
  const shares: KernelCall[][] = Array.from({ length: threads.count }, () => []);
  let done = 0;
  calls.forEach((call, i) => {
    const share = Math.min(threads.count - 1, Math.floor((threads.count * (done + costs[i] / 2)) / total));
    shares[share].push(call);
    done += costs[i];
  });
  threads.run(shares);
}

/**
 * Work on items 0 … n−1 cut into one range per thread, range starts multiples of `align`: `call(from,
 * count, part)` gives the call for items from … from + count − 1, the part-th range.
 */
export function rangeCalls(threads: KernelThreads | null, n: number, align: number, call: (from: number, count: number, part: number) => KernelCall): KernelCall[] {
  const parts = threads === null ? 1 : threads.count;
  const bounds = Array.from({ length: parts + 1 }, (_, p) => (p === parts ? n : align * Math.floor((n * p) / parts / align)));
  const calls: KernelCall[] = [];
  for (let p = 0; p < parts; p++) if (bounds[p + 1] > bounds[p]) calls.push(call(bounds[p], bounds[p + 1] - bounds[p], p));
  return calls;
}
