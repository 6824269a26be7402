import { mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafetensorsError, SafetensorsFile, writeSafetensors, type TensorToWrite } from "../lib/weights/safetensors.js";
import { bfloat16ToNumber, float16ToNumber } from "../lib/weights/safetensors-decode.js";
import { MAX_HEADER_BYTES, parseSafetensorsHeader } from "../lib/weights/safetensors-format.js";

const FIXTURE_DIR = join(__dirname, "fixtures", "gpt2-tiny");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safetensors-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCounter = 0;
const tmpPath = (name = "t") => join(dir, `${name}-${fileCounter++}.safetensors`);

/** Builds a file byte by byte, so tests can write files that are broken in exactly one way. */
function rawFile(
  header: object | string | Uint8Array,
  data: Uint8Array = new Uint8Array(0),
  headerLength?: bigint,
): Buffer {
  const text = typeof header === "string" || header instanceof Uint8Array ? header : JSON.stringify(header);
  const json = Buffer.from(text);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

async function writeRaw(bytes: Uint8Array): Promise<string> {
  const path = tmpPath("raw");
  await writeFile(path, bytes);
  return path;
}

/** Writes the bytes to a file, expects SafetensorsFile.open to fail on it, and returns the error message. */
async function openError(bytes: Uint8Array): Promise<string> {
  const path = await writeRaw(bytes);
  try {
    const file = await SafetensorsFile.open(path);
    await file.close();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    expect((e as Error).message.startsWith(path)).toBe(true); // every message names the file
    return (e as Error).message;
  }
  throw new Error("expected SafetensorsFile.open to fail");
}

const u16le = (values: number[]) => {
  const b = Buffer.alloc(2 * values.length);
  values.forEach((v, i) => b.writeUInt16LE(v, 2 * i));
  return new Uint8Array(b);
};

async function fileHandlePrototype(): Promise<Record<string, unknown>> {
  const handle = await open(__filename, "r");
  await handle.close();
  return Object.getPrototypeOf(handle) as Record<string, unknown>;
}

describe("writeSafetensors -> SafetensorsFile round trip", () => {
  it("writes and reads back F32, I32 and raw-byte tensors, shapes (scalar, empty) and metadata", async () => {
    const path = tmpPath();
    const weight = Float32Array.from({ length: 12 }, (_, i) => (i - 5.5) / 3);
    const tensors: Record<string, TensorToWrite> = {
      "layer.weight": { dtype: "F32", shape: [3, 4], data: weight },
      "layer.bias": { dtype: "F32", shape: [4], data: new Float32Array([1, -2, 3.5, 1e30]) },
      scalar: { dtype: "F32", shape: [], data: new Float32Array([42]) },
      empty: { dtype: "F32", shape: [0, 5], data: new Float32Array(0) },
      ids: { dtype: "I32", shape: [2, 2], data: new Int32Array([0, -1, 2147483647, -2147483648]) },
      half: { dtype: "F16", shape: [2], data: u16le([0x3c00, 0xc000]) },
    };
    await writeSafetensors(path, tensors, { format: "pt", note: "ünïcode ok" });

    const file = await SafetensorsFile.open(path);
    try {
      expect(file.metadata).toEqual({ format: "pt", note: "ünïcode ok" });
      expect(new Set(file.names())).toEqual(new Set(Object.keys(tensors)));
      const w = await file.readTensor("layer.weight");
      expect(w).toEqual({ dtype: "F32", shape: [3, 4], data: weight });
      expect(Array.from((await file.readTensor("layer.bias")).data)).toEqual([1, -2, 3.5, Math.fround(1e30)]);
      expect(await file.readTensor("scalar")).toEqual({ dtype: "F32", shape: [], data: new Float32Array([42]) });
      expect(await file.readTensor("empty")).toEqual({ dtype: "F32", shape: [0, 5], data: new Float32Array(0) });
      expect(await file.readIntTensor("ids")).toEqual({ dtype: "I32", shape: [2, 2], data: tensors.ids!.data });
      expect(Array.from((await file.readTensor("half")).data)).toEqual([1, -2]);
      expect(await file.readBytes("half")).toEqual(u16le([0x3c00, 0xc000]));
      expect(file.info("layer.weight")).toMatchObject({ dtype: "F32", shape: [3, 4] });
      expect(file.has("layer.weight")).toBe(true);
      expect(file.has("nope")).toBe(false);
      expect(file.fileByteLength).toBe((await readFile(path)).length);
    } finally {
      await file.close();
    }
  });

  // Golden bytes from the reference implementation's own tests (huggingface/safetensors,
  // safetensors/src/tensor.rs: test_serialization, test_serialization_forced_alignement, test_empty).
  it("produces byte-for-byte the layout of the reference implementation", async () => {
    const f32 = new Float32Array([0, 1, 2, 3, 4, 5]);
    const data = Buffer.from(f32.buffer);
    const cases: [Record<string, TensorToWrite>, Record<string, string> | undefined, Buffer][] = [
      // 64-byte JSON: no padding needed.
      [
        { "attn.0": { dtype: "F32", shape: [1, 2, 3], data: f32 } },
        undefined,
        rawFile('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}', data),
      ],
      // 65-byte JSON: 7 spaces of padding make the header 72 bytes, so the data starts 8-byte aligned.
      [
        { attn0: { dtype: "F32", shape: [1, 1, 2, 3], data: f32 } },
        undefined,
        rawFile('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ', data),
      ],
      [{}, undefined, rawFile("{}      ")],
      [{}, { framework: "pt" }, rawFile('{"__metadata__":{"framework":"pt"}}     ')],
    ];
    for (const [tensors, metadata, expected] of cases) {
      const path = tmpPath();
      await writeSafetensors(path, tensors, metadata);
      expect((await readFile(path)).toString("hex")).toBe(expected.toString("hex"));
    }
    expect(rawFile("{}      ").readBigUInt64LE(0)).toBe(8n);
  });

  it("orders tensors like the reference writer: larger dtype alignment first, then by name", async () => {
    const path = tmpPath();
    await writeSafetensors(path, {
      b: { dtype: "F32", shape: [1], data: new Float32Array([1]) },
      a: { dtype: "F16", shape: [3], data: u16le([1, 2, 3]) },
      c: { dtype: "I64", shape: [1], data: new Uint8Array(8) },
      a2: { dtype: "F32", shape: [1], data: new Float32Array([2]) },
      Z: { dtype: "F32", shape: [1], data: new Float32Array([3]) }, // "Z" < "a" in byte order
    });
    const file = await SafetensorsFile.open(path);
    expect(file.names()).toEqual(["c", "Z", "a2", "b", "a"]);
    for (const name of file.names()) {
      const { dtype, dataOffsets } = file.info(name);
      expect(dataOffsets[0] % (dtype === "I64" ? 8 : dtype === "F32" ? 4 : 2)).toBe(0);
    }
    expect((8 + file.headerByteLength) % 8).toBe(0);
    await file.close();
  });

  it("rejects bad input before touching the disk", async () => {
    const path = tmpPath();
    await writeFile(path, "previous contents");
    const bad: [Record<string, TensorToWrite>, RegExp][] = [
      [
        { x: { dtype: "F32", shape: [2, 2], data: new Float32Array(3) } },
        /shape \[2, 2\] of F32 needs 16 bytes, but the data has 12/,
      ],
      [{ x: { dtype: "F16", shape: [2], data: new Float32Array(2) } }, /Float32Array must be written as F32, not F16/],
      [{ x: { dtype: "F32", shape: [-1], data: new Float32Array(0) } }, /shape must be non-negative integers/],
      [{ x: { dtype: "Q4" as never, shape: [1], data: new Uint8Array(1) } }, /unknown dtype "Q4"/],
      [
        { __metadata__: { dtype: "F32", shape: [], data: new Float32Array(1) } },
        /"__metadata__" cannot be a tensor name/,
      ],
    ];
    for (const [tensors, message] of bad) {
      await expect(writeSafetensors(path, tensors)).rejects.toThrow(message);
    }
    await expect(writeSafetensors(path, {}, { n: 1 as unknown as string })).rejects.toThrow(
      /metadata value for "n" must be a string/,
    );
    expect(await readFile(path, "utf8")).toBe("previous contents");
    expect(await readdir(dir)).not.toContainEqual(expect.stringMatching(/\.tmp$/));
  });

  it("writes atomically: a failure half-way leaves the existing file intact and no temporary file", async () => {
    const path = tmpPath("atomic");
    await writeSafetensors(path, { old: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
    const before = await readFile(path);

    const proto = await fileHandlePrototype();
    const originalWrite = proto.write as (...args: unknown[]) => Promise<unknown>;
    let writes = 0;
    proto.write = async function (this: unknown, ...args: unknown[]) {
      if (++writes === 2) throw new Error("ENOSPC: no space left on device (simulated)");
      return originalWrite.apply(this, args);
    };
    try {
      await expect(
        writeSafetensors(path, { new: { dtype: "F32", shape: [1000], data: new Float32Array(1000).fill(7) } }),
      ).rejects.toThrow(/simulated/);
    } finally {
      proto.write = originalWrite;
    }
    expect(writes).toBe(2); // the header went into the temporary file before the failure
    expect(await readFile(path)).toEqual(before);
    const left = (await readdir(dir)).filter((f) => f.includes("atomic"));
    expect(left).toEqual([expect.stringMatching(/^atomic-\d+\.safetensors$/)]); // no temporary file

    // And a successful write replaces the file.
    await writeSafetensors(path, { new: { dtype: "F32", shape: [1], data: new Float32Array([7]) } });
    const file = await SafetensorsFile.open(path);
    expect(file.names()).toEqual(["new"]);
    await file.close();
  });
});

describe("decoding F16, BF16 and integer dtypes", () => {
  // Hand-computed: value = (-1)^sign * 2^(exponent - 15) * (1 + fraction/1024); exponent 0 is subnormal
  // (fraction * 2^-24), exponent 31 is infinity (fraction 0) or NaN.
  const F16: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x3c00, 1],
    [0xc000, -2],
    [0x3800, 0.5],
    [0x3555, 0.333251953125],
    [0x4248, 3.140625],
    [0x7bff, 65504],
    [0x0400, 2 ** -14],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x8001, -(2 ** -24)],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
    [0x7e00, NaN],
    [0x7c01, NaN],
  ];
  // bfloat16 = the high 16 bits of a float32: 1 sign, 8 exponent (bias 127), 7 fraction bits.
  const BF16: [number, number][] = [
    [0x0000, 0],
    [0x8000, -0],
    [0x3f80, 1],
    [0xc040, -3],
    [0x3e80, 0.25],
    [0x4049, 3.140625],
    [0x7f7f, (2 - 2 ** -7) * 2 ** 127],
    [0x0080, 2 ** -126],
    [0x0001, 2 ** -133],
    [0x7f80, Infinity],
    [0xff80, -Infinity],
    [0x7fc0, NaN],
  ];

  it("decodes F16 and BF16 bit patterns to the hand-computed values", () => {
    for (const [bits, value] of F16) expect(float16ToNumber(bits), `F16 0x${bits.toString(16)}`).toBe(value);
    for (const [bits, value] of BF16) expect(bfloat16ToNumber(bits), `BF16 0x${bits.toString(16)}`).toBe(value);
  });

  it("reads F16, BF16 and F64 tensors from a file as Float32Array", async () => {
    const f64 = new Float64Array([0.1, -1e300, 1 / 3]);
    const path = tmpPath();
    await writeSafetensors(path, {
      h: { dtype: "F16", shape: [F16.length], data: u16le(F16.map(([b]) => b)) },
      b: { dtype: "BF16", shape: [BF16.length], data: u16le(BF16.map(([b]) => b)) },
      d: { dtype: "F64", shape: [3], data: new Uint8Array(f64.buffer) },
    });
    const file = await SafetensorsFile.open(path);
    expect(Array.from((await file.readTensor("h")).data)).toEqual(F16.map(([, v]) => v));
    expect(Array.from((await file.readTensor("b")).data)).toEqual(BF16.map(([, v]) => v));
    expect(Array.from((await file.readTensor("d")).data)).toEqual([Math.fround(0.1), -Infinity, Math.fround(1 / 3)]);
    await file.close();
  });

  it("reads integer tensors as Int32Array and refuses int64 values that do not fit", async () => {
    const i64 = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n, 5n]);
    const tooBig = new BigInt64Array([1n, 2147483648n]);
    const path = tmpPath();
    await writeSafetensors(path, {
      i64: { dtype: "I64", shape: [5], data: new Uint8Array(i64.buffer) },
      big: { dtype: "I64", shape: [2], data: new Uint8Array(tooBig.buffer) },
      u8: { dtype: "U8", shape: [3], data: new Uint8Array([0, 128, 255]) },
      mask: { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) },
      i16: { dtype: "I16", shape: [2], data: u16le([0xffff, 0x7fff]) },
      f: { dtype: "F32", shape: [1], data: new Float32Array([1]) },
      f8: { dtype: "F8_E4M3", shape: [1], data: new Uint8Array([0x38]) },
    });
    const file = await SafetensorsFile.open(path);
    expect(Array.from((await file.readIntTensor("i64")).data)).toEqual([0, -1, 2147483647, -2147483648, 5]);
    expect(Array.from((await file.readIntTensor("u8")).data)).toEqual([0, 128, 255]);
    expect(Array.from((await file.readIntTensor("mask")).data)).toEqual([1, 0]);
    expect(Array.from((await file.readIntTensor("i16")).data)).toEqual([-1, 32767]);
    await expect(file.readIntTensor("big")).rejects.toThrow(/tensor "big": I64 element 1 .* does not fit in an int32/);
    await expect(file.readTensor("i64")).rejects.toThrow(/has dtype I64, not a float type; use readIntTensor/);
    await expect(file.readIntTensor("f")).rejects.toThrow(/has dtype F32, not an integer type; use readTensor/);
    await expect(file.readTensor("f8")).rejects.toThrow(/F8_E4M3, not a float type; this reader does not decode it/);
    expect(await file.readBytes("f8")).toEqual(new Uint8Array([0x38]));
    await file.close();
  });

  // An independent oracle: PyTorch's own float32 -> float16 / bfloat16 conversion of ~500 values spread over
  // many magnitudes (subnormals included), recorded in the fixture by tests/fixtures/make_gpt2_fixture.py.
  it("agrees with PyTorch's float16 and bfloat16 (oracle values in the fixture)", async () => {
    const expected = JSON.parse(await readFile(join(FIXTURE_DIR, "expected.json"), "utf8")) as {
      float16_bfloat16_oracle: { f16_bits: number[]; f16_values: number[]; bf16_bits: number[]; bf16_values: number[] };
    };
    const r = expected.float16_bfloat16_oracle;
    expect(r.f16_bits.length).toBeGreaterThan(400);
    expect(r.f16_values.some((v) => v !== 0 && Math.abs(v) < 2 ** -14)).toBe(true); // has F16 subnormals
    const path = tmpPath();
    await writeSafetensors(path, {
      h: { dtype: "F16", shape: [r.f16_bits.length], data: u16le(r.f16_bits) },
      b: { dtype: "BF16", shape: [r.bf16_bits.length], data: u16le(r.bf16_bits) },
    });
    const file = await SafetensorsFile.open(path);
    expect(Array.from((await file.readTensor("h")).data)).toEqual(r.f16_values);
    expect(Array.from((await file.readTensor("b")).data)).toEqual(r.bf16_values);
    await file.close();
  });
});

describe("clear errors for broken files", () => {
  const tensor = (dtype: string, shape: number[], begin: number, end: number) => ({
    dtype,
    shape,
    data_offsets: [begin, end],
  });
  const bytes16 = new Uint8Array(16);
  const expectOpenError = async (bytes: Uint8Array, message: RegExp) => expect(await openError(bytes)).toMatch(message);

  it("file too short for the 8-byte length", async () => {
    await expectOpenError(new Uint8Array(5), /the file is too short \(5 bytes\) to be a safetensors file/);
  });

  it("header length larger than the file", async () => {
    await expectOpenError(
      rawFile({ x: tensor("F32", [4], 0, 16) }, bytes16, 5000n),
      /the header length \(5000 bytes\) is larger than the file, which has only \d+ bytes after/,
    );
    await expectOpenError(
      rawFile("{}", new Uint8Array(0), 2n ** 63n),
      /header length \(9223372036854775808 bytes\) is larger than the file/,
    );
  });

  it("header length over the 100 MB limit (a sparse 101 MB file)", async () => {
    const path = tmpPath("huge-header");
    const handle = await open(path, "w");
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES + 1));
    await handle.write(prefix, 0, 8, 0);
    await handle.truncate(MAX_HEADER_BYTES + 1000);
    await handle.close();
    await expect(SafetensorsFile.open(path)).rejects.toThrow(
      /header length \(100000001 bytes\) exceeds the 100000000-byte limit/,
    );
    await rm(path);
  });

  it("a Git LFS pointer instead of the weights", async () => {
    const pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 548105171\n";
    await expectOpenError(new TextEncoder().encode(pointer), /Git LFS pointer file.*git lfs pull/);
  });

  it("header that is not UTF-8, not JSON, or not an object", async () => {
    await expectOpenError(rawFile(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /the header is not valid UTF-8/);
    await expectOpenError(
      rawFile('{"x": {"dtype": "F32",'),
      /the header is not valid JSON \(.*\); it starts with "\{\\"x\\": \{\\"dtype\\": \\"F32\\","/,
    );
    await expectOpenError(rawFile("[1, 2]"), /the header must be a JSON object/);
    await expectOpenError(rawFile({ __metadata__: { n: 1 } }), /"__metadata__" value for "n" must be a string, got 1/);
    await expectOpenError(rawFile({ x: "F32" }), /tensor "x": expected \{dtype, shape, data_offsets\}, got "F32"/);
  });

  it("unknown dtype", async () => {
    await expectOpenError(
      rawFile({ x: tensor("F99", [4], 0, 16) }, bytes16),
      /tensor "x" has unknown dtype "F99" \(known: BOOL, U8, .*F32.*\)/,
    );
  });

  it("malformed shape or data_offsets", async () => {
    await expectOpenError(
      rawFile({ x: tensor("F32", [-4], 0, 16) }, bytes16),
      /tensor "x": shape must be a list of non-negative integers, got \[-4\]/,
    );
    await expectOpenError(
      rawFile({ x: tensor("F32", [4], 16, 0) }, bytes16),
      /tensor "x": data_offsets must be \[begin, end\] with 0 <= begin <= end, got \[16,0\]/,
    );
    await expectOpenError(
      rawFile({ x: { dtype: "F32", shape: [4], data_offsets: [0] } }, bytes16),
      /data_offsets must be \[begin, end\]/,
    );
  });

  it("shape x dtype size that does not match the offsets", async () => {
    await expectOpenError(
      rawFile({ x: tensor("F32", [2, 3], 0, 16) }, bytes16),
      /tensor "x": shape \[2, 3\] of F32 \(4 bytes each\) needs 24 bytes, but data_offsets \[0, 16\] cover 16 bytes/,
    );
    await expectOpenError(
      rawFile({ x: tensor("F16", [8], 0, 8) }, bytes16.subarray(0, 8)),
      /needs 16 bytes, but data_offsets \[0, 8\] cover 8 bytes/,
    );
  });

  it("truncated data (offsets past the end of the file)", async () => {
    const path = tmpPath();
    const four = { dtype: "F32" as const, shape: [4], data: new Float32Array(4) };
    await writeSafetensors(path, { a: four, b: four });
    const full = await readFile(path);
    const message = await openError(full.subarray(0, full.length - 3));
    expect(message).toMatch(
      /tensor "b" \(data_offsets \[16, 32\]\) ends past the end of the data buffer, which has only 29 bytes: the file is truncated/,
    );
    expect(message).toContain(`the header describes ${full.length} bytes, the file has ${full.length - 3}`);
  });

  it("overlapping tensors, gaps, and extra bytes after the last tensor", async () => {
    const data = new Uint8Array(32);
    await expectOpenError(
      rawFile({ a: tensor("F32", [4], 0, 16), b: tensor("F32", [4], 8, 24) }, data.subarray(0, 24)),
      /tensor "b" \(data_offsets \[8, 24\]\) overlaps tensor "a" \(data_offsets \[0, 16\]\), which ends at 16/,
    );
    await expectOpenError(
      rawFile({ a: tensor("F32", [2], 0, 8), b: tensor("F32", [4], 16, 32) }, data),
      /tensor "b" \(data_offsets \[16, 32\]\) starts at 16 but the previous tensor ends at 8: .* packed with no gaps/,
    );
    await expectOpenError(
      rawFile({ a: tensor("F32", [4], 0, 16) }, data),
      /the tensors end at data offset 16 but the file has 16 more bytes after them/,
    );
  });

  it("unknown tensor name: lists some of the names the file has", async () => {
    const path = tmpPath();
    const t = { dtype: "F32" as const, shape: [1], data: new Float32Array(1) };
    const names = ["h.0.attn.c_attn.weight", "h.1.attn.c_attn.weight", "wte.weight", "a", "b", "c", "d"];
    await writeSafetensors(path, Object.fromEntries(names.map((n) => [n, t])));
    const file = await SafetensorsFile.open(path);
    await expect(file.readTensor("transformer.h.0.attn.c_attn.weight")).rejects.toThrow(
      /no tensor named "transformer.h.0.attn.c_attn.weight" among its 7 tensors \(similar: "h.0.attn.c_attn.weight", "h.1.attn.c_attn.weight"\)/,
    );
    expect(() => file.info("lm_head.weight")).toThrow(
      /no tensor named "lm_head.weight" among its 7 tensors \(for example: "a", "b", "c", "d", "h.0.attn.c_attn.weight", \.\.\.\)/,
    );
    await file.close();
  });

  it("parseSafetensorsHeader works on bytes alone (no file)", () => {
    const header = new TextEncoder().encode(
      JSON.stringify({ __metadata__: { k: "v" }, w: tensor("BF16", [2, 2], 0, 8) }),
    );
    const parsed = parseSafetensorsHeader(header, 8);
    expect(parsed.metadata).toEqual({ k: "v" });
    expect(parsed.tensors.get("w")).toEqual({ dtype: "BF16", shape: [2, 2], dataOffsets: [0, 8] });
    expect(() => parseSafetensorsHeader(header, 7, "remote.safetensors")).toThrow(
      /^remote.safetensors: tensor "w".*truncated/,
    );
  });
});

describe("the GPT-2 fixture written by tests/fixtures/make_gpt2_fixture.py (Python)", () => {
  interface Expected {
    tensor_checks: Record<string, { shape: number[]; first4: number[]; last: number; sum: number }>;
  }

  it("has the published GPT-2 tensor names and shapes, and the values the Python script wrote", async () => {
    const config = JSON.parse(await readFile(join(FIXTURE_DIR, "config.json"), "utf8")) as Record<string, number>;
    const expected = JSON.parse(await readFile(join(FIXTURE_DIR, "expected.json"), "utf8")) as Expected;
    const { n_embd: C, n_layer: L, n_positions: P, vocab_size: V } = config as Record<string, number>;
    const shapes: Record<string, number[]> = {
      "wte.weight": [V!, C!],
      "wpe.weight": [P!, C!],
      "ln_f.weight": [C!],
      "ln_f.bias": [C!],
    };
    for (let i = 0; i < L!; i++) {
      Object.assign(shapes, {
        [`h.${i}.ln_1.weight`]: [C!],
        [`h.${i}.ln_1.bias`]: [C!],
        [`h.${i}.attn.bias`]: [1, 1, P!, P!],
        [`h.${i}.attn.c_attn.weight`]: [C!, 3 * C!],
        [`h.${i}.attn.c_attn.bias`]: [3 * C!],
        [`h.${i}.attn.c_proj.weight`]: [C!, C!],
        [`h.${i}.attn.c_proj.bias`]: [C!],
        [`h.${i}.ln_2.weight`]: [C!],
        [`h.${i}.ln_2.bias`]: [C!],
        [`h.${i}.mlp.c_fc.weight`]: [C!, 4 * C!],
        [`h.${i}.mlp.c_fc.bias`]: [4 * C!],
        [`h.${i}.mlp.c_proj.weight`]: [4 * C!, C!],
        [`h.${i}.mlp.c_proj.bias`]: [C!],
      });
    }

    const file = await SafetensorsFile.open(join(FIXTURE_DIR, "model.safetensors"));
    try {
      expect(file.metadata).toEqual({ format: "pt" });
      expect([...file.names()].sort()).toEqual(Object.keys(shapes).sort());
      expect(Object.keys(expected.tensor_checks).sort()).toEqual(Object.keys(shapes).sort());
      for (const name of file.names()) {
        const t = await file.readTensor(name);
        const check = expected.tensor_checks[name]!;
        expect(t.dtype).toBe("F32");
        expect(t.shape, name).toEqual(shapes[name]);
        expect(check.shape, name).toEqual(shapes[name]);
        expect(Array.from(t.data.subarray(0, 4)), name).toEqual(check.first4); // float32 values, exact
        expect(t.data[t.data.length - 1], name).toBe(check.last);
        const sum = t.data.reduce((a, b) => a + b, 0);
        expect(Math.abs(sum - check.sum), name).toBeLessThan(1e-9 * Math.max(1, t.data.length));
      }
      // The causal-mask buffer, as in the published checkpoints: lower-triangular ones.
      const mask = (await file.readTensor("h.0.attn.bias")).data;
      expect(mask[0 * P! + 0]).toBe(1);
      expect(mask[0 * P! + 1]).toBe(0);
      expect(mask[(P! - 1) * P! + (P! - 1)]).toBe(1);
    } finally {
      await file.close();
    }
  });

  it("is reproduced byte for byte by writeSafetensors (same order, header and padding)", async () => {
    const original = await readFile(join(FIXTURE_DIR, "model.safetensors"));
    const file = await SafetensorsFile.open(join(FIXTURE_DIR, "model.safetensors"));
    const tensors: Record<string, TensorToWrite> = {};
    for (const name of file.names()) tensors[name] = await file.readTensor(name);
    const metadata = { ...file.metadata };
    await file.close();
    const path = tmpPath("rewrite");
    await writeSafetensors(path, tensors, metadata);
    const rewritten = await readFile(path);
    expect(rewritten.length).toBe(original.length);
    expect(rewritten.equals(original)).toBe(true);
    await rm(path);
  });
});

describe("reading one tensor from a large file", () => {
  const BIG = 50_000_000; // floats: 200 MB
  // Values planted at the start, the end, and around the 64 MiB (2^24 floats) chunk boundaries.
  const markers: [number, number][] = [
    [0, 1.5],
    [1, -2.5],
    [(1 << 24) - 1, 3.5],
    [1 << 24, 4.5],
    [(1 << 24) + 1, 5.5],
    [2 << 24, 6.5],
    [BIG - 1, 7.5],
  ];
  let path: string;
  let headerBytes: number;

  beforeAll(async () => {
    // A 200 MB file made sparse with truncate(): instant to create, and it takes almost no disk space.
    path = tmpPath("large");
    const header = Buffer.from(
      JSON.stringify({
        big: { dtype: "F32", shape: [BIG], data_offsets: [0, 4 * BIG] },
        small: { dtype: "F32", shape: [4], data_offsets: [4 * BIG, 4 * BIG + 16] },
      }),
    );
    headerBytes = header.length;
    const handle = await open(path, "w");
    await handle.write(rawFile(header));
    await handle.truncate(8 + headerBytes + 4 * BIG + 16);
    for (const [i, v] of markers)
      await handle.write(Buffer.from(new Float32Array([v]).buffer), 0, 4, 8 + headerBytes + 4 * i);
    await handle.write(Buffer.from(new Float32Array([10, 20, 30, 40]).buffer), 0, 16, 8 + headerBytes + 4 * BIG);
    await handle.close();
  });
  afterAll(async () => {
    await rm(path, { force: true });
  });

  it("reads only the header and that tensor's 16 bytes, not the 200 MB", async () => {
    const proto = await fileHandlePrototype();
    const originalRead = proto.read as (...args: unknown[]) => Promise<{ bytesRead: number }>;
    let bytesRead = 0;
    proto.read = async function (this: unknown, ...args: unknown[]) {
      const result = await originalRead.apply(this, args);
      bytesRead += result.bytesRead;
      return result;
    };
    const memoryBefore = process.memoryUsage().arrayBuffers;
    let small: Awaited<ReturnType<SafetensorsFile["readTensor"]>>;
    try {
      const file = await SafetensorsFile.open(path);
      small = await file.readTensor("small");
      await file.close();
    } finally {
      proto.read = originalRead;
    }
    expect(Array.from(small.data)).toEqual([10, 20, 30, 40]);
    // Exactly: the 8-byte length, the header, the tensor. (An implementation that reads the file another
    // way, e.g. fs.readFile, reads 0 bytes through file handles and fails this too.)
    expect(bytesRead).toBe(8 + headerBytes + 16);
    expect(process.memoryUsage().arrayBuffers - memoryBefore).toBeLessThan(16 * 1024 * 1024);
  });

  it("reads a 200 MB tensor in chunks, with every byte in the right place", async () => {
    const file = await SafetensorsFile.open(path);
    const big = await file.readTensor("big");
    await file.close();
    expect(big.shape).toEqual([BIG]);
    expect(big.data.length).toBe(BIG);
    for (const [i, v] of markers) expect(big.data[i], `element ${i}`).toBe(v);
    expect(big.data[12345]).toBe(0);
  });
});
