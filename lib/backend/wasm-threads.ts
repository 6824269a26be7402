import * as tf from "@tensorflow/tfjs";

/**
 * Multi-threaded WebAssembly in Node.js.
 *
 * Why this exists: tfjs-backend-wasm ships a threaded build (XNNPACK's matmuls split across a pthreads
 * pool) but refuses to use it in Node (tfjs issue #3830: its WASM_HAS_MULTITHREAD_SUPPORT flag returns
 * false whenever IS_NODE), because Emscripten's pthread workers are started from `blob:` URLs, which
 * Node's worker_threads cannot load (ERR_WORKER_PATH). Forcing the flag alone makes the backend fail and
 * tfjs silently falls back to cpu. Three small fixes make it work:
 *
 *  1. `new Worker("blob:...")` is redirected to the same worker code (tfjs-backend-wasm's own
 *     `wasmWorkerContents`) started with worker_threads' `eval: true`;
 *  2. the worker's first message carries the main script as a Blob to `importScripts`, which Node cannot
 *     read synchronously either; it is replaced by the path of the same script on disk
 *     (wasm-out/tfjs-backend-wasm-threaded-simd.js, the unbundled original of what the Blob holds);
 *  3. the thread count: the wasm module caps it at (logical CPUs / 2), computed once when the module
 *     starts (it assumes two hyper-threads per core), i.e. 1 on a 2-CPU machine; while it starts,
 *     `os.cpus()` reports enough CPUs for the requested count (`withCpuCountFor`).
 *
 * Emscripten keeps the pool's threads running, and a running worker keeps Node alive: a script would hang
 * at its end instead of exiting. `unrefWorkers()` marks them as not keeping the process alive, so scripts,
 * tests and notebooks end normally (a process that exits kills its workers).
 *
 * Nothing about the maths changes. By default it uses one thread per CPU (`wantedThreadCount`);
 * GPT_WASM_THREADS=0 turns it off, GPT_WASM_THREADS=<n> picks the number of threads.
 *
 * With our kernels (lib/kernels/), what the threaded build gives is above all its heap in a
 * SharedArrayBuffer: our own kernel threads (kernels/threads.ts) work on it, and the build's pool is then
 * switched off (backend.ts), since its threads would only compete with ours for the same cores.
 */

type WorkerConstructor = new (
  url: string | URL,
  options?: Record<string, unknown>,
) => { postMessage(message: unknown, transfer?: unknown): void; unref(): void };

let installed = false;

const isNode = (): boolean => typeof process !== "undefined" && typeof process.versions?.node === "string";

/**
 * How many threads to use: GPT_WASM_THREADS if set (0 or 1: none), else one per CPU (at most 8). Kernel
 * threads share each call's work through one queue (kernels/threads.ts), so a thread slowed by another
 * program on its core takes fewer pieces instead of holding the others up; bench/NOTES.md has the
 * measurement with a busy core.
 */
export async function wantedThreadCount(): Promise<number> {
  if (!isNode()) return 1;
  const setting = process.env.GPT_WASM_THREADS;
  if (setting !== undefined && setting !== "") {
    const n = Number(setting);
    if (!Number.isInteger(n) || n < 0)
      throw new Error(`GPT_WASM_THREADS must be 0 (off) or a number of threads, got "${setting}".`);
    return Math.max(1, n);
  }
  const cpus = (await import("node:os")).cpus().length;
  return Math.max(1, Math.min(cpus, 8));
}

/**
 * Prepares the threaded build before the wasm backend initialises (it reads the flag once, at start).
 * Returns false, changing nothing, if threads are off or this runtime cannot run them.
 */
export async function enableWasmThreads(
  wasmPackage: { setThreadsCount?: (n: number) => void },
  threads: number,
): Promise<boolean> {
  if (
    threads < 2 ||
    !isNode() ||
    typeof SharedArrayBuffer === "undefined" ||
    typeof wasmPackage.setThreadsCount !== "function"
  ) {
    return false;
  }
  let workerSource: string;
  let mainScriptPath: string;
  let NodeWorker: WorkerConstructor;
  try {
    const path = await import("node:path");
    const fs = await import("node:fs");
    const { createRequire } = await import("node:module");
    NodeWorker = (await import("node:worker_threads")).Worker as unknown as WorkerConstructor;
    const nodeRequire = createRequire(
      typeof __filename === "string" ? __filename : path.join(process.cwd(), "index.js"),
    );
    const packageDir = path.dirname(nodeRequire.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
    // As tfjs does before making its Blob: the exported text holds literal newlines inside "\n" strings.
    const contents = nodeRequire(
      path.join(packageDir, "wasm-out", "tfjs-backend-wasm-threaded-simd.worker.js"),
    ).wasmWorkerContents;
    workerSource = typeof contents === "string" ? contents.replace(/\n/g, "\\n") : contents;
    mainScriptPath = path.join(packageDir, "wasm-out", "tfjs-backend-wasm-threaded-simd.js");
    if (typeof workerSource !== "string" || !fs.existsSync(mainScriptPath)) return false;
  } catch {
    return false;
  }
  if (!installed) {
    installWorkerShim(NodeWorker, workerSource, mainScriptPath);
    installed = true;
  }
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  wasmPackage.setThreadsCount(threads);
  return true;
}

/**
 * Emscripten's glue assigns `global.Worker = require("worker_threads").Worker` and then creates its
 * workers at once; an accessor on `globalThis.Worker` hands it a subclass that fixes the two blob: cases.
 */
function installWorkerShim(NodeWorker: WorkerConstructor, workerSource: string, mainScriptPath: string): void {
  const makeShim = (Base: WorkerConstructor): WorkerConstructor =>
    class WasmThreadWorker extends Base {
      constructor(url: string | URL, options?: Record<string, unknown>) {
        if (String(url).startsWith("blob:")) super(workerSource, { ...options, eval: true });
        else super(url, options);
      }
      override postMessage(message: unknown, transfer?: unknown): void {
        const m = message as { cmd?: string; urlOrBlob?: unknown } | null;
        if (m && m.cmd === "load" && typeof m.urlOrBlob !== "string") m.urlOrBlob = mainScriptPath;
        super.postMessage(message, transfer);
      }
    };
  let shim = makeShim(NodeWorker);
  const existing = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  if (existing && !existing.configurable) return;
  Object.defineProperty(globalThis, "Worker", {
    configurable: true,
    enumerable: false,
    get: () => shim,
    set: (value: WorkerConstructor) => {
      shim = value === shim ? shim : makeShim(value);
    },
  });
}

/**
 * Runs `start` (the wasm backend's start-up) while os.cpus() lists at least 2·threads CPUs, so the module's
 * cap of (CPUs / 2) threads allows `threads`; restores os.cpus() afterwards.
 */
export async function withCpuCountFor<T>(threads: number, start: () => Promise<T>): Promise<T> {
  if (threads < 2 || !isNode()) return start();
  const os = (await import("node:os")).default as { cpus: () => unknown[] };
  const cpus = os.cpus;
  os.cpus = () => {
    const list = cpus.call(os);
    while (list.length > 0 && list.length < 2 * threads) list.push(list[list.length % Math.max(1, list.length)]);
    return list;
  };
  try {
    return await start();
  } finally {
    os.cpus = cpus;
  }
}

/** Lets the process exit while the thread pool's workers are alive (see the comment at the top). */
export function unrefWorkers(): void {
  const backend = tf.findBackend("wasm") as unknown as {
    wasm?: { PThread?: { runningWorkers?: Array<{ unref?(): void }>; unusedWorkers?: Array<{ unref?(): void }> } };
  } | null;
  const pthreads = backend?.wasm?.PThread;
  for (const worker of [...(pthreads?.runningWorkers ?? []), ...(pthreads?.unusedWorkers ?? [])]) worker.unref?.();
}

/**
 * Where the wasm module keeps its thread pool pointer (the C++ global `tfjs::backend::threadpool`), found in
 * the threaded binary's `get_threads_count` function, which starts by loading it:
 *   (local i32) i32.const ADDRESS  i32.load align=2 offset=OFFSET  local.tee 0  i32.eqz  if (return -1) ...
 * With that address the kernels can run one call without the pool (threadpool = NULL makes XNNPACK run on
 * the calling thread): small matmuls (attention's per-head products, generation) are faster without the
 * wake-up and hand-over of a parallel region, and do not stall when the machine is busy. The address is
 * checked at run time (get_threads_count must answer -1 with the pointer cleared) before it is used.
 */
export async function findThreadPoolAddress(): Promise<number | undefined> {
  try {
    const path = await import("node:path");
    const fs = await import("node:fs");
    const { createRequire } = await import("node:module");
    const nodeRequire = createRequire(
      typeof __filename === "string" ? __filename : path.join(process.cwd(), "index.js"),
    );
    const packageDir = path.dirname(nodeRequire.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
    const bytes = fs.readFileSync(path.join(packageDir, "dist", "tfjs-backend-wasm-threaded-simd.wasm"));
    return parseThreadPoolAddress(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch {
    return undefined;
  }
}

function parseThreadPoolAddress(bytes: Uint8Array): number | undefined {
  let pos = 8;
  const u32 = (): number => {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[pos++];
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return result;
  };
  const s32 = (): number => {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[pos++];
      result |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    return shift < 32 && byte & 0x40 ? result | (~0 << shift) : result;
  };
  const skipName = () => {
    const n = u32();
    pos += n;
  };
  let importedFunctions = 0;
  let exported: number | undefined;
  let code: [number, number] | undefined;
  while (pos < bytes.length) {
    const id = bytes[pos++];
    const size = u32();
    const start = pos;
    if (id === 2) {
      const n = u32();
      for (let i = 0; i < n; i++) {
        skipName();
        skipName();
        const kind = bytes[pos++];
        if (kind === 0) {
          u32();
          importedFunctions++;
        } else if (kind === 1 || kind === 2) {
          if (kind === 1) pos++; // table element type
          const flags = u32();
          u32();
          if (flags & 1) u32();
        } else if (kind === 3) pos += 2;
      }
    } else if (id === 7) {
      const n = u32();
      for (let i = 0; i < n; i++) {
        const length = u32();
        const name = new TextDecoder().decode(bytes.subarray(pos, pos + length));
        pos += length;
        const kind = bytes[pos++];
        const index = u32();
        if (kind === 0 && name === "get_threads_count") exported = index;
      }
    } else if (id === 10) code = [start, start + size];
    pos = start + size;
  }
  if (exported === undefined || !code) return undefined;
  pos = code[0];
  const count = u32();
  for (let i = 0; i < count; i++) {
    const size = u32();
    const bodyStart = pos;
    if (i === exported - importedFunctions) {
      const groups = u32();
      for (let g = 0; g < groups; g++) {
        u32();
        pos++;
      }
      if (bytes[pos++] !== 0x41) return undefined; // i32.const
      const base = s32();
      if (bytes[pos++] !== 0x28) return undefined; // i32.load
      u32(); // alignment
      const offset = u32();
      return (base >>> 0) + offset;
    }
    pos = bodyStart + size;
  }
  return undefined;
}

/** Checks the address against the running module; returns it if clearing it really disables the pool. */
export function validatedThreadPoolAddress(address: number | undefined): number | undefined {
  const backend = tf.findBackend("wasm") as unknown as {
    wasm?: { HEAP32: Int32Array; _get_threads_count?: () => number };
  } | null;
  const wasm = backend?.wasm;
  if (address === undefined || !wasm?._get_threads_count || address % 4 !== 0 || address <= 0) return undefined;
  const threads = wasm._get_threads_count();
  const pool = wasm.HEAP32[address >> 2];
  if (threads < 2 || pool === 0) return undefined;
  wasm.HEAP32[address >> 2] = 0;
  const without = wasm._get_threads_count();
  wasm.HEAP32[address >> 2] = pool;
  return without === -1 && wasm._get_threads_count() === threads ? address : undefined;
}

/** Threads the wasm backend actually runs with (1 when single-threaded). */
export function wasmThreadsInUse(): number {
  const backend = tf.findBackend("wasm") as unknown as { wasm?: { tfjs?: { getThreadsCount?(): number } } } | null;
  try {
    return backend?.wasm?.tfjs?.getThreadsCount?.() ?? 1;
  } catch {
    return 1;
  }
}
