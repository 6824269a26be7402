import * as tf from "@tensorflow/tfjs";

/**
 * Low-level access to the TensorFlow.js WebAssembly backend, for the custom kernels in this folder.
 *
 * The wasm backend keeps every tensor in the WebAssembly module's heap and knows it, on the C++ side, by a
 * numeric id registered with `register_tensor(id, size, byteOffset)`. Its C++ kernels (`_BatchMatMul`,
 * `_Transpose`, ...) are exported functions that take such ids. Two things follow, and the kernels here
 * use both:
 *
 *  - a *view* of part of a tensor can be registered under a fresh id without copying anything
 *    (`registerView`), so a C++ kernel can work on one slice of a batch in place;
 *  - JavaScript can read and write tensor data directly through `Float32Array`s over the heap (`f32`).
 *
 * Nothing here changes a result: the kernels compute what TensorFlow.js's own kernels compute.
 */

/** The parts of the Emscripten module that the kernels use. */
export interface WasmModule {
  HEAPU8: Uint8Array;
  HEAP32: Int32Array;
  HEAPF32: Float32Array;
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  _register_tensor(id: number, size: number, byteOffset: number): void;
  _dispose_data(id: number): void;
  _BatchMatMul(
    aId: number,
    aShapePtr: number,
    aShapeLength: number,
    bId: number,
    bShapePtr: number,
    bShapeLength: number,
    transposeA: number,
    transposeB: number,
    outId: number,
  ): void;
  __FusedMatMul?: (...args: number[]) => void;
  _Softmax?: (xId: number, outId: number, channels: number, batch: number) => void;
  tfjs: { getThreadsCount(): number };
}

/** The wasm backend object (tfjs-backend-wasm's BackendWasm), typed only as far as used here. */
export interface WasmBackend extends tf.KernelBackend {
  wasm: WasmModule;
  dataIdNextNumber: number;
  dataIdMap: {
    get(dataId: object): { id: number; memoryOffset: number; shape: number[]; dtype: tf.DataType; refCount: number };
  };
  makeOutput(
    shape: number[],
    dtype: tf.DataType,
    memoryOffset?: number,
    values?: tf.backend_util.BackendValues,
  ): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** The WebAssembly.Memory of the backend's heap (where the Emscripten module exposes it). */
export function heapMemory(backend: WasmBackend): WebAssembly.Memory | undefined {
  const module = backend.wasm as unknown as { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  const memory = module.wasmMemory ?? module.asm?.memory;
  return memory instanceof WebAssembly.Memory ? memory : undefined;
}

/** Byte offset of a tensor's data in the wasm heap. */
export function heapOffset(backend: WasmBackend, tensor: tf.TensorInfo): number {
  return backend.dataIdMap.get(tensor.dataId).memoryOffset;
}

/** The backend's C++ id of a tensor. */
export function tensorId(backend: WasmBackend, tensor: tf.TensorInfo): number {
  return backend.dataIdMap.get(tensor.dataId).id;
}

/** A Float32Array over a float32 tensor's data in the heap (valid until the heap grows: use it at once). */
export function f32(backend: WasmBackend, tensor: tf.TensorInfo): Float32Array {
  const { memoryOffset } = backend.dataIdMap.get(tensor.dataId);
  return new Float32Array(backend.wasm.HEAPU8.buffer, memoryOffset, tf.util.sizeFromShape(tensor.shape));
}

/** An Int32Array over an int32 tensor's data in the heap (valid until the heap grows: use it at once). */
export function i32(backend: WasmBackend, tensor: tf.TensorInfo): Int32Array {
  const { memoryOffset } = backend.dataIdMap.get(tensor.dataId);
  return new Int32Array(backend.wasm.HEAPU8.buffer, memoryOffset, tf.util.sizeFromShape(tensor.shape));
}

/**
 * Registers `size` floats starting at `byteOffset` as a tensor the C++ kernels can use, under a new id that
 * cannot collide with the backend's own ids. Release it with `releaseView`; the memory is not freed (it
 * belongs to the tensor it is a view of).
 */
export function registerView(backend: WasmBackend, byteOffset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm._register_tensor(id, size, byteOffset);
  return id;
}

export function releaseView(backend: WasmBackend, id: number): void {
  backend.wasm._dispose_data(id); // also deletes XNNPACK operators cached for this id
}

/** A small block of heap memory that lives as long as the module (shape arrays for the C++ kernels). */
const scratch = new WeakMap<WasmModule, number>();
export function scratchInt32(backend: WasmBackend, values: number[], slot: number): number {
  let base = scratch.get(backend.wasm);
  if (base === undefined) {
    base = backend.wasm._malloc(256) >>> 0;
    scratch.set(backend.wasm, base);
  }
  const pointer = base + slot * 32;
  backend.wasm.HEAP32.set(values, pointer >>> 2);
  return pointer;
}

/** Heap address of the wasm module's thread pool pointer, when known (threaded build; see wasm-threads.ts). */
let threadPoolAddress: number | undefined;

export function setThreadPoolAddress(address: number | undefined): void {
  threadPoolAddress = address;
}

/** Switches the module's thread pool off for good: XNNPACK then always runs on the calling thread. */
export function switchOffThreadPool(backend: WasmBackend, address: number): void {
  backend.wasm.HEAP32[address >>> 2] = 0;
  threadPoolAddress = undefined;
}

/**
 * Runs `f` with the wasm module's thread pool switched off (XNNPACK then works on the calling thread), for
 * work too small to be worth a parallel region: handing each of attention's 64 per-head matmuls to the
 * pool costs more than it saves, and stalls whenever the other core is busy. Without a known pool
 * address (single-threaded build), just runs `f`.
 */
export function withoutThreadPool<T>(backend: WasmBackend, f: () => T): T {
  if (threadPoolAddress === undefined) return f();
  const heap = backend.wasm.HEAP32;
  const index = threadPoolAddress >>> 2;
  const pool = heap[index];
  heap[index] = 0;
  try {
    return f();
  } finally {
    backend.wasm.HEAP32[index] = pool;
  }
}
