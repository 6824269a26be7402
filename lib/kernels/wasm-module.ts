/**
 * Whole WebAssembly modules of kernels written with the assembler (wasm-asm.ts): their binary, and
 * `KernelModule`, which compiles one once and instantiates it over each heap it works on.
 */
import { type Func, typeCode, unsignedLeb, vector } from "./wasm-asm.js";

const utf8 = (s: string) => [...new TextEncoder().encode(s)];
const section = (id: number, body: number[]) => [id, ...unsignedLeb(body.length), ...body];

/** The binary of a module of `funcs` (all void) that imports a memory as env.memory (shared: with its maximum). */
export function encodeModule(funcs: Func[], shared: boolean): Uint8Array<ArrayBuffer> {
  const types = funcs.map((f) => [0x60, ...vector(f.paramTypes.map((t) => [typeCode[t]])), 0]);
  const memoryLimits = shared ? [0x03, 0, ...unsignedLeb(65536)] : [0x00, 0];
  const name = (text: string) => [...unsignedLeb(utf8(text).length), ...utf8(text)];
  const imports = vector([[...name("env"), ...name("memory"), 0x02, ...memoryLimits]]);
  const functions = vector(funcs.map((_, i) => unsignedLeb(i)));
  const exports = vector(funcs.map((f, i) => [...name(f.name), 0x00, ...unsignedLeb(i)]));
  const code = vector(funcs.map((f) => f.encode((callee) => funcs.indexOf(callee))));
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vector(types)),
    ...section(2, imports),
    ...section(3, functions),
    ...section(7, exports),
    ...section(10, code),
  ]);
}

/** Whether a memory is shared between threads (the threaded wasm build's). */
export function isShared(memory: WebAssembly.Memory): boolean {
  return typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
}

/**
 * A module of kernels, compiled once for each kind of heap (shared between threads or not) and instantiated
 * once for each heap it works on. `instance` is null where it cannot be built (no WebAssembly SIMD) or when
 * GPT_WASM_SIMD_KERNELS=0 turns our kernels off; the callers then take their fallback paths.
 */
export class KernelModule<Kernels> {
  private readonly modules = new Map<boolean, WebAssembly.Module>();
  private readonly instances = new WeakMap<WebAssembly.Memory, Kernels | null>();

  constructor(
    private readonly description: string,
    private readonly build: () => Func[],
  ) {}

  /** The compiled module for a shared or unshared memory (kernel threads instantiate it too). */
  module(shared: boolean): WebAssembly.Module {
    let module = this.modules.get(shared);
    if (!module) {
      module = new WebAssembly.Module(encodeModule(this.build(), shared));
      this.modules.set(shared, module);
    }
    return module;
  }

  /** The kernels over `memory`. */
  instance(memory: WebAssembly.Memory | undefined): Kernels | null {
    if (!memory) return null;
    if (this.instances.has(memory)) return this.instances.get(memory)!;
    let kernels: Kernels | null = null;
    const off = typeof process !== "undefined" && process.env?.GPT_WASM_SIMD_KERNELS === "0";
    if (!off) {
      try {
        kernels = new WebAssembly.Instance(this.module(isShared(memory)), { env: { memory } })
          .exports as unknown as Kernels;
      } catch (error) {
        if (typeof process !== "undefined" && process.env?.GPT_DEBUG)
          console.warn(`${this.description} unavailable:`, error);
      }
    }
    this.instances.set(memory, kernels);
    return kernels;
  }
}
