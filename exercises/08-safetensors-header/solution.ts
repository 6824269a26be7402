/**
 * Exercise 08-safetensors-header · reference solution: reading a .safetensors file by hand.
 *
 *   bytes 0..7       N, the header's length: an unsigned 64-bit little-endian integer
 *   bytes 8..8+N     the header, UTF-8 JSON: { "__metadata__": {...}, "wte.weight": { "dtype": "F32",
 *                    "shape": [50257, 768], "data_offsets": [begin, end] }, ... }
 *   bytes 8+N..      the data: each tensor's elements, little-endian, row-major; data_offsets count from here
 */

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
  // A DataView reads multi-byte numbers with an explicit byte order, whatever the machine's own. It must
  // start at bytes.byteOffset: a Uint8Array can be a window into a bigger buffer (Node's Buffers often are).
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true)); // true: little-endian
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  const metadata: Record<string, string> = {};
  const tensors: Record<string, TensorEntry> = {};
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") {
      Object.assign(metadata, entry);
      continue;
    }
    const { dtype, shape, data_offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    tensors[name] = { dtype, shape, dataOffsets: data_offsets };
  }
  return { headerLength, metadata, tensors };
}

/** The float32 tensor `name`: its shape and its values. Throws for an unknown name or another dtype. */
export function readFloat32(bytes: Uint8Array, name: string): { shape: number[]; data: Float32Array } {
  const { headerLength, tensors } = readHeader(bytes);
  const entry = tensors[name];
  if (!entry)
    throw new Error(`no tensor named ${JSON.stringify(name)} (the file has: ${Object.keys(tensors).join(", ")})`);
  if (entry.dtype !== "F32") throw new Error(`tensor ${JSON.stringify(name)} is ${entry.dtype}, not F32`);
  const [begin, end] = entry.dataOffsets;
  const start = 8 + headerLength + begin; // offsets count from the start of the data, not of the file
  const view = new DataView(bytes.buffer, bytes.byteOffset + start, end - begin);
  const data = new Float32Array((end - begin) / 4);
  for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(4 * i, true);
  return { shape: entry.shape, data };
}
