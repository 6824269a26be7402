import * as tf from "@tensorflow/tfjs";
import { kernelThreadCount, registerWasmKernels, startKernelThreads } from "../kernels/index.js";
import { type WasmBackend, setThreadPoolAddress, switchOffThreadPool } from "../kernels/wasm-heap.js";
import { freeGradientMemoryEarly } from "./gradient-memory.js";
import {
  enableWasmThreads,
  findThreadPoolAddress,
  unrefWorkers,
  validatedThreadPoolAddress,
  wantedThreadCount,
  wasmThreadsInUse,
  withCpuCountFor,
} from "./wasm-threads.js";

/**
 * Choosing where the maths runs. TensorFlow.js computes the same results on several "backends"; they
 * differ only in speed:
 *
 *   tensorflow  native TensorFlow (npm @tensorflow/tfjs-node or -node-gpu, installed by the user)
 *   webgpu      the GPU through WebGPU (npm `webgpu` in Node, `navigator.gpu` in a browser)
 *   wasm        WebAssembly with SIMD on the CPU: the fast default on a laptop without those
 *   cpu         plain JavaScript: slow, but always there
 *
 * `initBackend()` takes the first that works in that order, unless the environment variable GPT_BACKEND
 * (or its argument) names one.
 *
 * Speed-ups it installs (each computes exactly what it replaces; each can be turned off for comparisons):
 *   - on wasm: custom kernels and fused ops (lib/kernels/, GPT_WASM_KERNELS=0 keeps tfjs's own), among
 *     them our own matmul (kernels/gemm.ts), WebAssembly SIMD loops inside them (GPT_WASM_SIMD_KERNELS=0;
 *     fused multiply-adds where the runtime has relaxed SIMD, GPT_WASM_FMA=0 turns those off), and worker
 *     threads in Node (wasm-threads.ts, kernels/threads.ts: by default one per CPU;
 *     GPT_WASM_THREADS=0 or =<n>);
 *   - on every backend: backward-pass memory freed as soon as it is no longer needed
 *     (gradient-memory.ts, GPT_FREE_GRADIENTS=0).
 * Measurements: bench/NOTES.md.
 */
export const backendNames = ["tensorflow", "webgpu", "wasm", "cpu"] as const;
export type BackendName = (typeof backendNames)[number];

export interface BackendInfo {
  name: BackendName;
  /** What runs the maths, in words: e.g. "WebAssembly (SIMD, 1 thread)". */
  description: string;
  /** CPU threads the WebAssembly backend computes with (1 for the other backends). */
  threads: number;
}

/** Tries to set up one backend; returns a description, or why it is unavailable. */
type Loader = () => Promise<{ ok: true; description: string; threads?: number } | { ok: false; reason: string }>;

// Optional packages are imported only when tried, so one that is not installed fails here, not at start-up.
// The compiled CommonJS keeps this a real `import()`, which also loads ES-module-only packages (`webgpu`).
// biome-ignore lint/suspicious/noExplicitAny: optional packages, imported by name at run time (their types may be absent)
const importModule = (specifier: string): Promise<any> => import(specifier);

/**
 * tfjs's cpu backend prints a banner advising tfjs-node the first time it stores a tensor. The course picks its
 * backend on purpose (initBackend prefers the faster ones), so the banner is only noise: the cpu backend is
 * registered again with a factory that marks the banner as shown, before anything creates it.
 */
function quietCpuBackend(): void {
  type CpuBackend = tf.KernelBackend & { firstUse?: boolean };
  const created = (tf.engine() as unknown as { registry: Record<string, CpuBackend> }).registry.cpu;
  if (created) {
    created.firstUse = false;
    return;
  }
  const factory = tf.findBackendFactory("cpu");
  if (!factory) return;
  tf.removeBackend("cpu");
  tf.registerBackend(
    "cpu",
    () => {
      const backend = factory() as CpuBackend;
      backend.firstUse = false;
      return backend;
    },
    1,
  );
}
quietCpuBackend();

const loaders: Record<BackendName, Loader> = {
  async tensorflow() {
    for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
      try {
        await importModule(pkg);
        if (await tf.setBackend("tensorflow")) return { ok: true, description: `native TensorFlow (${pkg})` };
      } catch {
        // not installed, or its native library failed to load: try the next one
      }
    }
    return { ok: false, reason: "install @tensorflow/tfjs-node (or -node-gpu) to use native TensorFlow" };
  },

  async webgpu() {
    // biome-ignore lint/suspicious/noExplicitAny: the WebGPU globals that Dawn's package provides are untyped here
    const g = globalThis as any;
    // GPT_WEBGPU_DAWN passes toggles to Dawn (e.g. "backend=opengl") and accepts a software adapter: a way to
    // check the WebGPU path on a machine without a GPU (scripts/check-webgpu.ts), never the fast choice.
    const dawnToggles = readEnvironment("GPT_WEBGPU_DAWN");
    if (!g.navigator?.gpu) {
      if (!dawnToggles && !(await mayHaveGpu()))
        return { ok: false, reason: "no GPU device found (/dev/dri, /dev/nvidia*)" };
      try {
        const { create, globals } = await importModule("webgpu");
        Object.assign(g, globals);
        const gpu = create(dawnToggles ? dawnToggles.split(",") : []);
        if (dawnToggles) {
          // Dawn's OpenGL backend offers only the "compatibility" feature level; ask for it on every request.
          const requestAdapter = gpu.requestAdapter.bind(gpu);
          gpu.requestAdapter = (options: object = {}) => requestAdapter({ featureLevel: "compatibility", ...options });
        }
        if (g.navigator) Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true });
        else g.navigator = { gpu };
      } catch {
        return { ok: false, reason: "no WebGPU in this runtime (npm package `webgpu` not installed or not loadable)" };
      }
    }
    const adapter = await g.navigator.gpu.requestAdapter();
    if (!adapter) return { ok: false, reason: "WebGPU found no GPU adapter" };
    const adapterInfo = adapter.info ?? {};
    const name: string = [adapterInfo.vendor, adapterInfo.architecture, adapterInfo.description]
      .filter(Boolean)
      .join(" ");
    if (!dawnToggles && (adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/i.test(name))) {
      return { ok: false, reason: `WebGPU adapter is a software renderer (${name || "fallback"}), slower than wasm` };
    }
    await importModule("@tensorflow/tfjs-backend-webgpu");
    if (!(await tf.setBackend("webgpu"))) return { ok: false, reason: "the tfjs WebGPU backend failed to start" };
    return { ok: true, description: `WebGPU (${name || "GPU"})` };
  },

  async wasm() {
    let wasmPackage: { setThreadsCount?: (n: number) => void };
    try {
      wasmPackage = await importModule("@tensorflow/tfjs-backend-wasm");
    } catch {
      return { ok: false, reason: "npm package @tensorflow/tfjs-backend-wasm is not installed" };
    }
    // Threads are chosen once, before the wasm module first starts (see wasm-threads.ts; GPT_WASM_THREADS).
    // (not tf.findBackend: it would start the module, before the flag below is set)
    const firstStart = !("wasm" in ((tf.engine() as unknown as { registry: Record<string, unknown> }).registry ?? {}));
    const threadCount = firstStart ? await wantedThreadCount() : 1;
    const threaded = firstStart && (await enableWasmThreads(wasmPackage, threadCount));
    let started = threaded
      ? await withCpuCountFor(threadCount, () => tf.setBackend("wasm"))
      : await tf.setBackend("wasm");
    if (!started && threaded) {
      // the threaded build failed to start here: fall back to the single-threaded one
      tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
      wasmPackage.setThreadsCount?.(1);
      started = await tf.setBackend("wasm");
    }
    if (!started) return { ok: false, reason: "the WebAssembly backend failed to start" };
    unrefWorkers();
    const customKernels = readEnvironment("GPT_WASM_KERNELS") !== "0";
    if (customKernels) registerWasmKernels();
    // Our kernels' threads (kernels/threads.ts) do the heavy work; the module's own pool (XNNPACK's, for
    // tfjs's remaining kernels) would only compete with them for the cores: switched off (steps 6-7% faster)
    const kernelThreads = customKernels && threaded ? await startKernelThreads(threadCount) : kernelThreadCount();
    if (threaded) {
      const poolAddress = validatedThreadPoolAddress(await findThreadPoolAddress());
      if (kernelThreads > 1 && poolAddress !== undefined)
        switchOffThreadPool(tf.backend() as unknown as WasmBackend, poolAddress);
      else setThreadPoolAddress(poolAddress);
    }
    const threads = kernelThreads > 1 ? kernelThreads : Math.max(1, wasmThreadsInUse());
    const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
    return {
      ok: true,
      description: `WebAssembly (${simd ? "SIMD" : "no SIMD"}, ${threads} thread${threads === 1 ? "" : "s"})`,
      threads,
    };
  },

  async cpu() {
    if (!(await tf.setBackend("cpu"))) return { ok: false, reason: "the plain JavaScript backend failed to start" };
    return { ok: true, description: "plain JavaScript on the CPU (slow)" };
  },
};

let active: BackendInfo | undefined;

/**
 * Selects and initialises the fastest available backend, or the one named by `preferred` or by the
 * environment variable GPT_BACKEND. Naming an unknown or unavailable backend is an error that lists
 * what is available here. Calling it again with the same choice is cheap.
 */
export async function initBackend(preferred?: string): Promise<BackendInfo> {
  const requested = preferred ?? readEnvironment("GPT_BACKEND");
  if (requested !== undefined && !(backendNames as readonly string[]).includes(requested)) {
    throw new Error(`Unknown backend "${requested}". Choose one of: ${backendNames.join(", ")}.`);
  }
  if (active && (requested === undefined || requested === active.name) && tf.getBackend() === active.name)
    return active;
  const candidates = requested ? [requested as BackendName] : backendNames;
  const reasons: string[] = [];
  for (const name of candidates) {
    const result = await loaders[name]();
    if (result.ok) {
      await tf.ready();
      freeGradientMemoryEarly(); // see gradient-memory.ts (GPT_FREE_GRADIENTS=0 turns it off)
      active = { name, description: result.description, threads: result.threads ?? 1 };
      return active;
    }
    reasons.push(`${name}: ${result.reason}`);
  }
  const available = await availableBackends();
  throw new Error(
    `Backend "${requested}" is not available here (${reasons.join("; ")}). ` +
      `Available: ${available.join(", ") || "none"}. Unset GPT_BACKEND to pick automatically.`,
  );
}

/** The backends that can start on this machine (this tries each one, then restores the current one). */
export async function availableBackends(): Promise<BackendName[]> {
  const current = tf.getBackend();
  const available: BackendName[] = [];
  for (const name of backendNames) if ((await loaders[name]()).ok) available.push(name);
  if (current) await tf.setBackend(current);
  return available;
}

/**
 * On Linux a GPU shows up as /dev/nvidia* or /dev/dri/renderD*; without one, starting Dawn only to find a
 * software renderer costs time and prints driver warnings. Elsewhere (macOS Metal, Windows) just try.
 */
async function mayHaveGpu(): Promise<boolean> {
  if (typeof process === "undefined" || process.platform !== "linux") return true;
  const { readdirSync } = await import("node:fs");
  const devices = (folder: string): string[] => {
    try {
      return readdirSync(folder);
    } catch {
      return [];
    }
  };
  return (
    devices("/dev").some((name) => /^nvidia\d/.test(name)) ||
    devices("/dev/dri").some((name) => name.startsWith("renderD"))
  );
}

function readEnvironment(name: string): string | undefined {
  const value = typeof process !== "undefined" ? process.env[name] : undefined;
  return value === undefined || value === "" ? undefined : value;
}
