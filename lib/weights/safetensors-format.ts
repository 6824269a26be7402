/**
 * The safetensors format (see safetensors.ts): its element types, limits and error class, and the header's
 * parsing and validation (pure: no I/O, so it also works on bytes fetched any other way).
 */

/**
 * Element types, in the order of the reference implementation's `Dtype` enum (increasing alignment). The
 * writer uses this order: tensors with the largest dtype come first, so every tensor starts aligned.
 */
export const DTYPE_ORDER = [
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
export const FLOAT_DTYPES: readonly SafetensorsDtype[] = ["F32", "F16", "BF16", "F64"];
export const INT_DTYPES: readonly SafetensorsDtype[] = ["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"];

/** Same limit as the reference implementation: a larger header means a corrupt file (or not a safetensors one). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Reads are split into chunks of at most this size (a single `read` is limited to 2 GiB). */
export const READ_CHUNK_BYTES = 64 * 1024 * 1024;

/** Where one tensor is in the file and how to interpret its bytes. */
export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

/** Every problem with a file's contents is reported with this error class; the message names the file. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

export interface SafetensorsHeader {
  /** Tensors in file order (by data offset). */
  tensors: Map<string, TensorInfo>;
  /** The optional "__metadata__" string-to-string map ({} when absent). */
  metadata: Record<string, string>;
}

export const isNonNegativeInt = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

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
