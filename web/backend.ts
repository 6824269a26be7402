/**
 * Where the maths runs in the page. The same three TensorFlow.js backends as in Node, minus native
 * TensorFlow, tried fastest first:
 *
 *   webgpu  the GPU, through the browser's WebGPU (when `navigator.gpu` gives an adapter; a software one,
 *           such as Chromium's SwiftShader, only when asked for by name: it is slower than wasm, as in lib)
 *   wasm    WebAssembly on the CPU, with tfjs's own kernels (lib's kernels are for Node: they need its threads)
 *   cpu     plain JavaScript: slow, but always there
 *
 * lib's initBackend is not used here: it also sets up Node's worker threads and reads environment variables.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu"; // registers the "webgpu" backend; it starts only when chosen
import { getThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

export const PAGE_BACKENDS = ["webgpu", "wasm", "cpu"] as const;
export type PageBackend = (typeof PAGE_BACKENDS)[number];

export interface PageBackendInfo {
  name: PageBackend;
  /** What runs the maths, in words: "WebGPU (google swiftshader)", "WebAssembly (SIMD, 2 threads)". */
  description: string;
}

// tfjs fetches its WebAssembly binaries by URL: scripts/web.ts copies them next to this bundle (web/dist/).
setWasmPaths(new URL("./", import.meta.url).href);

/** The parts of a WebGPU adapter the page reads. */
interface AdapterInfo {
  info?: { vendor?: string; architecture?: string; description?: string };
  isFallbackAdapter?: boolean;
}

/** Sets up one backend; `chosen` when the learner asked for it by name. */
type Starter = (chosen: boolean) => Promise<{ ok: true; description: string } | { ok: false; reason: string }>;

const starters: Record<PageBackend, Starter> = {
  async webgpu(chosen) {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<AdapterInfo | null> } }).gpu; // (WebGPU's types differ by version)
    if (!gpu) return { ok: false, reason: "this browser has no WebGPU (navigator.gpu)" };
    const adapter = await gpu.requestAdapter().catch(() => null);
    if (!adapter) return { ok: false, reason: "WebGPU found no GPU adapter" };
    const info = adapter.info ?? {};
    const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") || "GPU";
    const software = adapter.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software/i.test(name);
    if (software && !chosen)
      return { ok: false, reason: `the WebGPU adapter is a software renderer (${name}), slower than wasm` };
    if (!(await tf.setBackend("webgpu"))) return { ok: false, reason: "the tfjs WebGPU backend failed to start" };
    return { ok: true, description: `WebGPU (${name}${software ? ", a software renderer on the CPU" : ""})` };
  },

  async wasm() {
    let started = await tf.setBackend("wasm");
    if (!started && (await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT"))) {
      // the threaded build could not start here: the single-threaded one may
      tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
      started = await tf.setBackend("wasm");
    }
    if (!started) return { ok: false, reason: "the WebAssembly backend failed to start" };
    const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
    const threads = getThreadsCount();
    // Threads need a "cross-origin isolated" page (the headers npm run web sends); other hosts get one thread.
    return {
      ok: true,
      description: `WebAssembly (${simd ? "SIMD" : "no SIMD"}, ${threads} thread${threads === 1 ? "" : "s"})`,
    };
  },

  async cpu() {
    if (!(await tf.setBackend("cpu"))) return { ok: false, reason: "the plain JavaScript backend failed to start" };
    return { ok: true, description: "plain JavaScript on the CPU (slow)" };
  },
};

/** Starts `preferred`, or the fastest backend that works here; an error says why none did. */
export async function startBackend(preferred?: PageBackend): Promise<PageBackendInfo> {
  const reasons: string[] = [];
  for (const name of preferred ? [preferred] : PAGE_BACKENDS) {
    const result = await starters[name](preferred !== undefined);
    if (result.ok) {
      await tf.ready();
      return { name, description: result.description };
    }
    reasons.push(`${name}: ${result.reason}`);
  }
  throw new Error(`No backend could start in this browser (${reasons.join("; ")}).`);
}

export function isPageBackend(name: string | null): name is PageBackend {
  return (PAGE_BACKENDS as readonly string[]).includes(name ?? "");
}
