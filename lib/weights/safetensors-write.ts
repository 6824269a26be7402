/** Writing a `.safetensors` file (see safetensors.ts), laid out as the reference writer does, atomically. */
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { LITTLE_ENDIAN_HOST } from "./safetensors-decode.js";
import {
  DTYPE_BYTES,
  DTYPE_ORDER,
  READ_CHUNK_BYTES,
  type SafetensorsDtype,
  isNonNegativeInt,
} from "./safetensors-format.js";

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
