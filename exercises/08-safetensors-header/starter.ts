/**
 * Exercise 08-safetensors-header: reading a .safetensors file by hand. Read README.md in this folder, fill in
 * the TODOs, then check your work with `npm run exercise -- 08-safetensors-header`.
 *
 *   bytes 0..7       N, the header's length: an unsigned 64-bit little-endian integer
 *   bytes 8..8+N     the header, UTF-8 JSON: { "__metadata__": {...}, "wte.weight": { "dtype": "F32",
 *                    "shape": [50257, 768], "data_offsets": [begin, end] }, ... }
 *   bytes 8+N..      the data: each tensor's elements, little-endian, row-major; data_offsets count from here
 */
import { todo } from "../harness/check.js";

export interface TensorEntry {
  dtype: string; // "F32", "F16", "I32", ...
  shape: number[];
  dataOffsets: [number, number]; // [begin, end) in bytes, relative to the start of the data (byte 8 + N)
}

export interface SafetensorsHeader {
  /** N: the byte length of the JSON header. */
  headerLength: number;
  /** The "__metadata__" entry (string to string), {} when absent. */
  metadata: Record<string, string>;
  tensors: Record<string, TensorEntry>;
}

/** Parses the header of a whole .safetensors file held in memory. */
export function readHeader(bytes: Uint8Array): SafetensorsHeader {
  // TODO: 1. N = the first 8 bytes as a little-endian unsigned 64-bit integer: a DataView over the bytes
  //          (new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)) has getBigUint64(0, true);
  //       2. decode bytes 8 .. 8 + N with a TextDecoder and JSON.parse it;
  //       3. "__metadata__" goes to metadata; every other key is a tensor (rename data_offsets to dataOffsets).
  return todo("readHeader", bytes);
}

/** The float32 tensor `name`: its shape and its values. Throws for an unknown name or another dtype. */
export function readFloat32(bytes: Uint8Array, name: string): { shape: number[]; data: Float32Array } {
  // TODO: find the tensor in the header (throw an Error when it is missing or not "F32"); its bytes start at
  //       8 + N + begin in the file. Read each value with DataView.getFloat32(offset, true) (little-endian).
  return todo("readFloat32", bytes, name);
}
