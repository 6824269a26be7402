/**
 * Reading a `.safetensors` file (see safetensors.ts) one tensor at a time: `SafetensorsFile`, over a file on
 * disk or over bytes in memory.
 */
import { open, type FileHandle } from "node:fs/promises";
import { decodeFloats, decodeInts } from "./safetensors-decode.js";
import {
  FLOAT_DTYPES,
  INT_DTYPES,
  MAX_HEADER_BYTES,
  READ_CHUNK_BYTES,
  SafetensorsError,
  type SafetensorsDtype,
  type SafetensorsHeader,
  type TensorInfo,
  parseSafetensorsHeader,
} from "./safetensors-format.js";

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
