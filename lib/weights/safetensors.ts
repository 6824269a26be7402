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
import { randomBytes } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Element types, in the order of the reference implementation's `Dtype` enum (increasing alignment). The
 * writer uses this order: tensors with the largest dtype come first, so every tensor starts aligned.
 */
const DTYPE_ORDER = [
  "BOOL",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "F64",
  "I64",
  "U64",
] as const;
export type SafetensorsDtype = (typeof DTYPE_ORDER)[number];

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};
const FLOAT_DTYPES: readonly SafetensorsDtype[] = ["F32", "F16", "BF16", "F64"];
const INT_DTYPES: readonly SafetensorsDtype[] = ["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"];

/** Same limit as the reference implementation: a larger header means a corrupt file (or not a safetensors one). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Reads are split into chunks of at most this size (a single `read` is limited to 2 GiB). */
const READ_CHUNK_BYTES = 64 * 1024 * 1024;

/** Where one tensor is in the file and how to interpret its bytes. */
export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

export interface FloatTensorData {
  /** The dtype stored in the file (F32, F16, BF16 or F64); `data` is float32 whatever it is. */
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array;
}

export interface IntTensorData {
  /** The dtype stored in the file; `data` is int32 whatever it is. */
  dtype: SafetensorsDtype;
  shape: number[];
  data: Int32Array;
}

/** Every problem with a file's contents is reported with this error class; the message names the file. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

// ---------------------------------------------------------------------------------------------------------
// Header parsing and validation (pure: no I/O, so it also works on bytes fetched any other way)
// ---------------------------------------------------------------------------------------------------------

export interface SafetensorsHeader {
  /** Tensors in file order (by data offset). */
  tensors: Map<string, TensorInfo>;
  /** The optional "__metadata__" string-to-string map ({} when absent). */
  metadata: Record<string, string>;
}

const isNonNegativeInt = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

/**
 * Parses the JSON header and checks it against the size of the data buffer that follows it in the file.
 * `source` (usually the file path) only appears in error messages.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  dataByteLength: number,
  source = "safetensors data",
): SafetensorsHeader {
  function fail(message: string): never {
    throw new SafetensorsError(`${source}: ${message}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    return fail("the header is not valid UTF-8 (is this really a .safetensors file?)");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const start = JSON.stringify(text.slice(0, 40));
    return fail(`the header is not valid JSON (${(e as Error).message}); it starts with ${start}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return fail("the header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}");
  }

  const metadata: Record<string, string> = {};
  const entries: [string, TensorInfo][] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        fail(`"__metadata__" must be an object of strings`);
      }
      for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof value !== "string") {
          fail(`"__metadata__" value for ${JSON.stringify(key)} must be a string, got ${JSON.stringify(value)}`);
        }
        metadata[key] = value;
      }
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (typeof raw !== "object" || raw === null) {
      fail(`${where}: expected {dtype, shape, data_offsets}, got ${JSON.stringify(raw)}`);
    }
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      fail(`${where} has unknown dtype ${JSON.stringify(dtype)} (known: ${DTYPE_ORDER.join(", ")})`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      fail(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const [begin, end] = Array.isArray(offsets) && offsets.length === 2 ? offsets : [];
    if (!isNonNegativeInt(begin) || !isNonNegativeInt(end) || begin > end) {
      fail(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    const info: TensorInfo = { dtype: dtype as SafetensorsDtype, shape: [...shape], dataOffsets: [begin, end] };
    // The byte size implied by shape and dtype must be exactly the byte range the offsets give.
    const needed = info.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[info.dtype];
    if (!Number.isSafeInteger(needed) || needed !== end - begin) {
      fail(
        `${where}: shape [${info.shape.join(", ")}] of ${info.dtype} (${DTYPE_BYTES[info.dtype]} bytes each) ` +
          `needs ${needed} bytes, but data_offsets [${begin}, ${end}] cover ${end - begin} bytes`,
      );
    }
    entries.push([name, info]);
  }

  // Sort by offsets, then check that the tensors tile [0, dataByteLength) exactly.
  entries.sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  const described = entries.reduce((m, [, t]) => Math.max(m, t.dataOffsets[1]), 0);
  let expected = 0;
  let previous = "";
  for (const [
    name,
    {
      dataOffsets: [begin, end],
    },
  ] of entries) {
    const range = `${JSON.stringify(name)} (data_offsets [${begin}, ${end}])`;
    if (end > dataByteLength) {
      fail(
        `tensor ${range} ends past the end of the data buffer, which has only ${dataByteLength} bytes: ` +
          `the file is truncated (the header describes ${8 + headerBytes.length + described} bytes, ` +
          `the file has ${8 + headerBytes.length + dataByteLength})`,
      );
    }
    if (begin < expected) fail(`tensor ${range} overlaps tensor ${previous}, which ends at ${expected}`);
    if (begin > expected) {
      fail(
        `tensor ${range} starts at ${begin} but the previous tensor ends at ${expected}: the format requires ` +
          `tensors to be packed with no gaps`,
      );
    }
    expected = end;
    previous = range;
  }
  if (expected !== dataByteLength) {
    fail(
      `the tensors end at data offset ${expected} but the file has ${dataByteLength - expected} more bytes ` +
        `after them`,
    );
  }
  return { tensors: new Map(entries), metadata };
}

// ---------------------------------------------------------------------------------------------------------
// Decoding element bytes into JavaScript typed arrays
// ---------------------------------------------------------------------------------------------------------

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** IEEE 754 half precision (1 sign bit, 5 exponent bits, 10 fraction bits) to a JavaScript number. */
export function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals: 0.fraction * 2^-14
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/**
 * bfloat16 is the top half of a float32 (same 8-bit exponent, 7 fraction bits): shifting its bits left by 16
 * gives the float32 with exactly the same value.
 */
export function bfloat16ToNumber(bits: number): number {
  const u32 = new Uint32Array([(bits & 0xffff) << 16]);
  return new Float32Array(u32.buffer)[0]!;
}

let float16Table: Float32Array | undefined;
/** All 65,536 half-precision values, computed once: decoding a tensor is then one table lookup per element. */
function float16Lookup(): Float32Array {
  if (!float16Table) {
    float16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) float16Table[i] = float16ToNumber(i);
  }
  return float16Table;
}

/** Decodes raw little-endian bytes of a floating-point dtype into a Float32Array (F64 is rounded to float32). */
export function decodeFloats(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  // F32 on a little-endian machine (nearly all of them): the bytes already are the Float32Array, no copy.
  if (dtype === "F32" && LITTLE_ENDIAN_HOST && bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  }
  const out = new Float32Array(n);
  switch (dtype) {
    case "F32":
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case "F16": {
      const table = float16Lookup();
      for (let i = 0; i < n; i++) out[i] = table[view.getUint16(2 * i, true)]!;
      return out;
    }
    case "BF16": {
      const bits = new Uint32Array(out.buffer); // write the float32 bit patterns directly
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case "F64":
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    default:
      throw new SafetensorsError(`cannot decode ${dtype} as floats`);
  }
}

/** Decodes raw little-endian bytes of an integer dtype into an Int32Array; values outside int32 are an error. */
export function decodeInts(dtype: SafetensorsDtype, bytes: Uint8Array, source = "decodeInts"): Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Int32Array(n);
  function tooBig(i: number, what: string): never {
    throw new SafetensorsError(`${source}: ${dtype} element ${i} (${what}) does not fit in an int32`);
  }
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case "BOOL":
      case "U8":
        out[i] = view.getUint8(i);
        break;
      case "I8":
        out[i] = view.getInt8(i);
        break;
      case "I16":
        out[i] = view.getInt16(2 * i, true);
        break;
      case "U16":
        out[i] = view.getUint16(2 * i, true);
        break;
      case "I32":
        out[i] = view.getInt32(4 * i, true);
        break;
      case "U32": {
        const v = view.getUint32(4 * i, true);
        out[i] = v <= 0x7fffffff ? v : tooBig(i, String(v));
        break;
      }
      case "I64":
      case "U64": {
        // An int64 fits in an int32 when its high word is just the sign extension of the low word.
        const lo = view.getInt32(8 * i, true);
        const hi = view.getInt32(8 * i + 4, true);
        out[i] = hi === (lo < 0 ? -1 : 0) && !(dtype === "U64" && hi !== 0) ? lo : tooBig(i, `high word ${hi}`);
        break;
      }
      default:
        throw new SafetensorsError(`cannot decode ${dtype} as integers`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Reading from a file, one tensor at a time
// ---------------------------------------------------------------------------------------------------------

/** Fills `target` from the file starting at `position`, however many `read` calls that takes. */
async function readFully(handle: FileHandle, target: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(READ_CHUNK_BYTES, target.length - done);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(`${what}: unexpected end of file at byte ${position + done} (did the file change?)`);
    }
    done += bytesRead;
  }
}

/**
 * Where a `SafetensorsFile` reads its bytes: a file on disk (`open`), or bytes already in memory
 * (`fromBytes`: a file a web page fetched or a learner picked, where there is no file system).
 */
interface ByteSource {
  /** Fills `target` with the bytes from `position` on; `what` names them in errors. */
  read(target: Uint8Array, position: number, what: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Checks the first 8 bytes of a file of `size` bytes (the header's length, N) and returns N. Shared by
 * both ways of opening, so a damaged file gets the same message on disk and in a browser.
 */
function headerLength(prefix: Uint8Array, size: number, source: string): number {
  if (size < 8) {
    throw new SafetensorsError(
      `${source}: the file is too short (${size} bytes) to be a safetensors file, ` +
        `which starts with an 8-byte header length`,
    );
  }
  if (new TextDecoder().decode(prefix.subarray(0, 8)) === "version ") {
    throw new SafetensorsError(
      `${source}: this looks like a Git LFS pointer file, not the weights themselves ` +
        `(run "git lfs pull" in the model repository, or download the file directly)`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(size - 8)) {
    throw new SafetensorsError(
      `${source}: the header length (${n} bytes) is larger than the file, which has only ` +
        `${size - 8} bytes after the 8-byte length: the file is truncated or not a safetensors file`,
    );
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`${source}: the header length (${n} bytes) exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  return Number(n);
}

/**
 * An open `.safetensors` file. `open` reads and validates only the header; `readTensor` then reads one tensor's
 * bytes. Call `close()` when done (the file handle stays open until then).
 *
 *   const file = await SafetensorsFile.open("gpt2/model.safetensors");
 *   const wte = await file.readTensor("wte.weight"); // { dtype: "F32", shape: [50257, 768], data: Float32Array }
 *   await file.close();
 *
 * `SafetensorsFile.fromBytes(bytes, name)` reads the same format from bytes in memory (no file system needed).
 */
export class SafetensorsFile {
  private constructor(
    /** The file's path, or the name given to `fromBytes`: it starts every error message. */
    readonly path: string,
    private readonly source: ByteSource,
    private readonly header: SafetensorsHeader,
    /** N, the byte length of the JSON header (the data buffer starts at byte 8 + N). */
    readonly headerByteLength: number,
    readonly fileByteLength: number,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const handle = await open(path, "r");
    try {
      const size = (await handle.stat()).size;
      const prefix = new Uint8Array(8);
      if (size >= 8) await readFully(handle, prefix, 0, path);
      const headerBytes = new Uint8Array(headerLength(prefix, size, path));
      await readFully(handle, headerBytes, 8, path);
      const header = parseSafetensorsHeader(headerBytes, size - 8 - headerBytes.length, path);
      const source: ByteSource = {
        read: (target, position, what) => readFully(handle, target, position, what),
        close: () => handle.close(),
      };
      return new SafetensorsFile(path, source, header, headerBytes.length, size);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** The same reader over a whole file's bytes already in memory; `name` (e.g. the file's name) starts error messages. */
  static fromBytes(bytes: Uint8Array, name = "safetensors bytes"): SafetensorsFile {
    const n = headerLength(bytes, bytes.byteLength, name);
    const header = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.byteLength - 8 - n, name);
    const source: ByteSource = {
      read: async (target, position) => target.set(bytes.subarray(position, position + target.length)),
      close: async () => undefined,
    };
    return new SafetensorsFile(name, source, header, n, bytes.byteLength);
  }

  /** Metadata from the header's "__metadata__" entry, e.g. { format: "pt" }. */
  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  /** Tensor names, in the order their data appears in the file. */
  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  /** Dtype, shape and byte offsets of a tensor, without reading its data. */
  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafetensorsError(this.unknownNameMessage(name));
    return { dtype: info.dtype, shape: [...info.shape], dataOffsets: [...info.dataOffsets] };
  }

  /** The tensor's raw little-endian bytes, exactly as stored. */
  async readBytes(name: string): Promise<Uint8Array> {
    const {
      dataOffsets: [begin, end],
    } = this.info(name);
    const bytes = new Uint8Array(end - begin); // a fresh buffer, so byteOffset 0: aligned for any typed array
    await this.source.read(bytes, 8 + this.headerByteLength + begin, this.label(name));
    return bytes;
  }

  /** A floating-point tensor (F32, F16, BF16 or F64) as a Float32Array. */
  async readTensor(name: string): Promise<FloatTensorData> {
    const { dtype, shape } = this.info(name);
    if (!FLOAT_DTYPES.includes(dtype)) {
      const hint = INT_DTYPES.includes(dtype)
        ? "use readIntTensor for integer tensors"
        : "this reader does not decode it (readBytes gives the raw bytes)";
      throw new SafetensorsError(`${this.label(name)} has dtype ${dtype}, not a float type; ${hint}`);
    }
    return { dtype, shape, data: decodeFloats(dtype, await this.readBytes(name)) };
  }

  /** An integer or boolean tensor as an Int32Array (int64 values must fit in 32 bits). */
  async readIntTensor(name: string): Promise<IntTensorData> {
    const { dtype, shape } = this.info(name);
    if (!INT_DTYPES.includes(dtype)) {
      throw new SafetensorsError(`${this.label(name)} has dtype ${dtype}, not an integer type; use readTensor`);
    }
    return { dtype, shape, data: decodeInts(dtype, await this.readBytes(name), this.label(name)) };
  }

  async close(): Promise<void> {
    await this.source.close();
  }

  private label(name: string): string {
    return `${this.path}: tensor ${JSON.stringify(name)}`;
  }

  private unknownNameMessage(name: string): string {
    const names = this.names();
    // Suggest names that share the last two parts ("attn.c_attn.weight" for "transformer.h.0.attn.c_attn.weight").
    const tail = name.split(".").slice(-2).join(".");
    const similar = names.filter((n) => n.endsWith(tail));
    const shown = (similar.length > 0 ? similar : names).slice(0, 5).map((n) => JSON.stringify(n));
    const more = (similar.length > 0 ? similar : names).length > 5 ? ", ..." : "";
    return (
      `${this.path}: no tensor named ${JSON.stringify(name)} among its ${names.length} tensors ` +
      `(${similar.length > 0 ? "similar" : "for example"}: ${shown.join(", ")}${more})`
    );
  }
}

/** Same as `SafetensorsFile.open(path)`. */
export function openSafetensors(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(path);
}

// ---------------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------------

/**
 * A tensor to write: a Float32Array for F32, an Int32Array for I32, or the raw little-endian bytes
 * (Uint8Array) for any dtype.
 */
export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: Float32Array | Int32Array | Uint8Array;
}

/** The bytes to store for one tensor, little-endian whatever the machine. */
function tensorBytes(name: string, t: TensorToWrite): Uint8Array {
  const where = `writeSafetensors: tensor ${JSON.stringify(name)}`;
  if (!(t.dtype in DTYPE_BYTES)) throw new Error(`${where}: unknown dtype ${JSON.stringify(t.dtype)}`);
  if (t.shape.some((d) => !isNonNegativeInt(d))) {
    throw new Error(`${where}: shape must be non-negative integers, got [${t.shape.join(", ")}]`);
  }
  const count = t.shape.reduce((a, b) => a * b, 1);
  const { data } = t;
  let bytes: Uint8Array;
  if (data instanceof Float32Array || data instanceof Int32Array) {
    const expectedDtype = data instanceof Float32Array ? "F32" : "I32";
    if (t.dtype !== expectedDtype) {
      throw new Error(
        `${where}: a ${data.constructor.name} must be written as ${expectedDtype}, not ${t.dtype} ` +
          `(pass raw little-endian bytes as a Uint8Array for other dtypes)`,
      );
    }
    if (LITTLE_ENDIAN_HOST) {
      bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } else {
      bytes = new Uint8Array(data.byteLength);
      const view = new DataView(bytes.buffer);
      const isFloat = data instanceof Float32Array;
      data.forEach((v, i) => (isFloat ? view.setFloat32(4 * i, v, true) : view.setInt32(4 * i, v, true)));
    }
  } else if (data instanceof Uint8Array) {
    bytes = data;
  } else {
    throw new Error(`${where}: data must be a Float32Array, an Int32Array or a Uint8Array of raw bytes`);
  }
  if (bytes.byteLength !== count * DTYPE_BYTES[t.dtype]) {
    const needed = count * DTYPE_BYTES[t.dtype];
    throw new Error(
      `${where}: shape [${t.shape.join(", ")}] of ${t.dtype} needs ${needed} bytes, ` +
        `but the data has ${bytes.byteLength}`,
    );
  }
  return bytes;
}

/** Compares names by their UTF-8 bytes, as the reference implementation (Rust strings) does. */
const compareUtf8 = (a: string, b: string): number => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

/**
 * Writes tensors to a `.safetensors` file, the way the reference writer lays it out:
 *   - tensors ordered by dtype, largest alignment first (F64/I64 before F32 before F16 ...), then by name;
 *   - the header is compact JSON, "__metadata__" first, padded with spaces to a multiple of 8 bytes, so that
 *     the data buffer (and therefore every tensor, thanks to the ordering) starts 8-byte aligned.
 *
 * The write is atomic: everything goes to a temporary file in the same directory, which is then renamed over
 * `path`. If anything fails, the temporary file is removed and an existing file at `path` is left untouched.
 */
export async function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, TensorToWrite>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  // Validate everything and build the header before touching the disk.
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== "string") {
      throw new Error(`writeSafetensors: metadata value for ${JSON.stringify(key)} must be a string`);
    }
  }
  const names = Object.keys(tensors).sort((a, b) => {
    const byDtype = DTYPE_ORDER.indexOf(tensors[b]!.dtype) - DTYPE_ORDER.indexOf(tensors[a]!.dtype);
    return byDtype !== 0 ? byDtype : compareUtf8(a, b);
  });
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = { ...metadata };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === "__metadata__" || name === "") {
      throw new Error(`writeSafetensors: ${JSON.stringify(name)} cannot be a tensor name`);
    }
    const t = tensors[name]!;
    const bytes = tensorBytes(name, t);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
    blobs.push(bytes);
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padding = (8 - (json.length % 8)) % 8;
  const prefix = Buffer.alloc(8 + json.length + padding, 0x20); // spaces, for the padding
  prefix.writeBigUInt64LE(BigInt(json.length + padding), 0);
  json.copy(prefix, 8);

  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx");
  let closed = false;
  try {
    for (const chunk of [prefix, ...blobs]) {
      for (let done = 0; done < chunk.byteLength; ) {
        const { bytesWritten } = await handle.write(chunk, done, Math.min(READ_CHUNK_BYTES, chunk.byteLength - done));
        done += bytesWritten;
      }
    }
    await handle.sync(); // on disk before the rename makes it visible
    await handle.close();
    closed = true;
    await rename(tmp, path);
  } catch (e) {
    if (!closed) await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}
