/**
 * Reading and writing `.safetensors` files: the format Hugging Face uses to publish model weights
 * (`model.safetensors` next to `config.json`).
 *
 * The format is deliberately simple (https://github.com/huggingface/safetensors):
 *
 *   bytes 0..7        N, the length of the header, as an unsigned 64-bit little-endian integer
 *   bytes 8..8+N      the header: UTF-8 JSON, e.g.
 *                       { "__metadata__": { "format": "pt" },
 *                         "wte.weight": { "dtype": "F32", "shape": [50257, 768], "data_offsets": [0, 154389504] },
 *                         ... }
 *   bytes 8+N..end    the data buffer: every tensor's elements, raw, little-endian, row-major ("C order").
 *
 * `data_offsets: [begin, end]` are byte offsets into the data buffer (not into the file). The reference
 * implementation accepts a file only if the tensors tile the data buffer exactly: sorted by offset, each one
 * starts where the previous one ended, the first at 0 and the last ends at the end of the file. That rule makes
 * "overlapping", "gap" and "truncated" easy to detect, and this module enforces it too.
 *
 * Why not just `fs.readFile`? GPT-2 small is 500 MB and GPT-2 XL 6 GB. The header tells us where each tensor
 * lives, so `SafetensorsFile` reads only the header when it opens a file and then reads one tensor's bytes at a
 * time, on demand, with positioned reads on a file handle.
 */
export { SafetensorsError } from "./safetensors-format.js";
export type { SafetensorsDtype, TensorInfo } from "./safetensors-format.js";
export { SafetensorsFile, openSafetensors } from "./safetensors-read.js";
export type { FloatTensorData, IntTensorData } from "./safetensors-read.js";
export { writeSafetensors } from "./safetensors-write.js";
export type { TensorToWrite } from "./safetensors-write.js";
