/**
 * Worker threads that run our WebAssembly kernels (gemm.ts) on the shared wasm heap, beside the calling
 * thread: how a matmul uses every core.
 *
 * TensorFlow.js's threaded wasm build (backend/wasm-threads.ts) keeps the heap in a SharedArrayBuffer. Each
 * worker here instantiates the same compiled kernel modules over that same memory, so it can work on any
 * tensor in place. A worker sleeps in `Atomics.wait` on its own small control block; `parallel` writes a
 * kernel name's index and its arguments into each block, wakes the workers with `Atomics.notify`, does the
 * caller's own share, then waits until every worker has marked the job done. No message passing, no copies:
 * a hand-over costs tens of microseconds, against milliseconds of work in a Linear layer's matmul.
 *
 * Workers are unref'ed: they never keep a script alive, and die with the process.
 */

/** Control block of one worker, in 32-bit words: job number, kernel index, argument count, job done, failed. */
const JOB = 0;
const KERNEL = 1;
const ARG_COUNT = 2;
const DONE = 3;
const FAILED = 4;
const ARGS_OFFSET = 64; // bytes; arguments as float64 (exact for every i32 and f32)
const MAX_ARGS = 24;

/** The worker's program (CommonJS, run with `eval: true`). */
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const { memory, modules, names, control } = workerData;
const kernels = Object.assign({}, ...modules.map((module) => new WebAssembly.Instance(module, { env: { memory } }).exports));
const byIndex = names.map((name) => kernels[name]);
const state = new Int32Array(control);
const args = new Float64Array(control, ${ARGS_OFFSET}, ${MAX_ARGS});
parentPort.postMessage("ready");
let job = 0;
for (;;) {
  Atomics.wait(state, ${JOB}, job);
  job = Atomics.load(state, ${JOB});
  try {
    byIndex[state[${KERNEL}]](...args.subarray(0, state[${ARG_COUNT}]));
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
  ) {}

  /** Threads in all: the workers and the calling thread. */
  get count(): number {
    return this.controls.length + 1;
  }

  /**
   * Starts `count − 1` workers over `memory` (which must be shared) with the kernels of `modules`, or
   * returns null where worker threads are unavailable (browsers, count < 2).
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
    const controls: Int32Array[] = [];
    const started: Promise<boolean>[] = [];
    for (let w = 1; w < count; w++) {
      const control = new SharedArrayBuffer(ARGS_OFFSET + 8 * MAX_ARGS);
      const worker = new Worker(workerSource, { eval: true, workerData: { memory, modules, names, control } });
      started.push(new Promise((resolve) => {
        worker.once("message", () => {
          worker.unref();
          resolve(true);
        });
        worker.once("error", () => resolve(false));
      }));
      controls.push(new Int32Array(control));
    }
    // a worker that cannot instantiate the kernels (an old runtime) would never answer: then no pool at all
    return (await Promise.all(started)).every(Boolean) ? new KernelThreads(memory, names, controls) : null;
  }

  /**
   * Runs `kernel` on worker w with `workerArgs[w]` (one list per worker; fewer lists use fewer workers)
   * while the calling thread runs `ownShare`; returns when all are done.
   */
  parallel(kernel: string, workerArgs: number[][], ownShare: () => void): void {
    const index = this.names.indexOf(kernel);
    if (index < 0) throw new Error(`KernelThreads: no kernel named ${kernel}`);
    if (workerArgs.length > this.controls.length) throw new Error(`KernelThreads: ${workerArgs.length} jobs for ${this.controls.length} workers`);
    const job = ++this.job;
    workerArgs.forEach((args, w) => {
      if (args.length > MAX_ARGS) throw new Error(`KernelThreads: ${args.length} arguments, at most ${MAX_ARGS}`);
      const state = this.controls[w];
      new Float64Array(state.buffer, ARGS_OFFSET, MAX_ARGS).set(args);
      state[KERNEL] = index;
      state[ARG_COUNT] = args.length;
      Atomics.store(state, JOB, job);
      Atomics.notify(state, JOB);
    });
    try {
      ownShare();
    } finally {
      for (let w = 0; w < workerArgs.length; w++) {
        const state = this.controls[w];
        for (let done = Atomics.load(state, DONE); done !== job; done = Atomics.load(state, DONE)) Atomics.wait(state, DONE, done);
      }
    }
    for (let w = 0; w < workerArgs.length; w++) {
      if (this.controls[w][FAILED]) {
        this.controls[w][FAILED] = 0;
        throw new Error(`KernelThreads: kernel ${kernel} failed on a worker thread (arguments ${workerArgs[w].join(", ")})`);
      }
    }
  }
}

let running: KernelThreads | null = null;

/** Makes `threads` the pool the kernels use (null: none, everything on the calling thread). */
export function setKernelThreads(threads: KernelThreads | null): void {
  running = threads;
}

/** The pool for kernels working on `memory`, if one is running. */
export function kernelThreads(memory: WebAssembly.Memory): KernelThreads | null {
  return running?.memory === memory ? running : null;
}
