/**
 * Checks for 08-safetensors-header: random tensors are written to a temporary file with gpt-course's
 * `writeSafetensors`; the learner's reader must see what gpt-course's `openSafetensors` sees. The bytes are
 * handed over as a window into a bigger buffer (byteOffset ≠ 0), as Node's Buffers often are.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSafetensors, type Random, type SafetensorsFile, type TensorToWrite, writeSafetensors } from "gpt-course";
import {
  type Conforms,
  defineExercise,
  expectCloseArrays,
  expectEqualArrays,
  expectRejects,
  fail,
  isTodo,
  randomInt,
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

const NAMES = [
  "wte.weight",
  "wpe.weight",
  "h.0.ln_1.weight",
  "h.0.ln_1.bias",
  "h.0.attn.c_attn.weight",
  "h.0.attn.c_attn.bias",
  "h.1.mlp.c_fc.weight",
  "ln_f.bias",
];

interface TestFile {
  /** The file's bytes, as a window into a bigger buffer. */
  bytes: Uint8Array;
  reference: SafetensorsFile;
  float32Names: string[];
  otherNames: string[];
}

/** Writes random tensors (F32 of random shapes, a scalar, an I32 and an F16 one) and opens them both ways. */
async function withRandomFile(random: Random, check: (file: TestFile) => Promise<void> | void): Promise<void> {
  const tensors: Record<string, TensorToWrite> = {};
  const float32Names = random.shuffle([...NAMES]).slice(0, randomInt(random, 2, 5));
  for (const name of float32Names) {
    const shape = Array.from({ length: randomInt(random, 1, 2) }, () => randomInt(random, 1, 6));
    const size = shape.reduce((a, b) => a * b, 1);
    tensors[name] = { dtype: "F32", shape, data: Float32Array.from({ length: size }, () => random.next() * 20 - 10) };
  }
  tensors.scale = { dtype: "F32", shape: [], data: Float32Array.of(random.next()) }; // a scalar: shape []
  float32Names.push("scale");
  const steps = randomInt(random, 1, 5);
  tensors["attn.masked_bias"] = {
    dtype: "I32",
    shape: [steps],
    data: Int32Array.from({ length: steps }, () => random.int(1000)),
  };
  tensors["half.weight"] = {
    dtype: "F16",
    shape: [2, 3],
    data: Uint8Array.from({ length: 12 }, () => random.int(256)),
  };
  const metadata = { format: "pt", [`note${random.int(100)}`]: `seed ${random.seed()}` };

  const dir = mkdtempSync(join(tmpdir(), "exercise-safetensors-"));
  const path = join(dir, "model.safetensors");
  let reference: SafetensorsFile | undefined;
  try {
    await writeSafetensors(path, tensors, metadata);
    const contents = readFileSync(path);
    const offset = 4 * randomInt(random, 1, 8);
    const buffer = new ArrayBuffer(offset + contents.length + 16);
    const bytes = new Uint8Array(buffer, offset, contents.length);
    bytes.set(contents);
    new Uint8Array(buffer, 0, offset).fill(0xff); // junk before the window: reading it gives nonsense
    reference = await openSafetensors(path);
    const file = { bytes, reference, float32Names, otherNames: ["attn.masked_bias", "half.weight"] };
    try {
      await check(file);
    } catch (error) {
      if (isTodo(error)) throw error;
      // The most common mistake: the same check passes on a buffer that holds only the file (byteOffset 0).
      let passesAlone = false;
      try {
        await check({ ...file, bytes: bytes.slice() });
        passesAlone = true;
      } catch {
        // a different mistake: report the original failure
      }
      if (passesAlone) {
        fail(
          `your code works when the file's bytes fill their whole buffer, but not when they are a window into a bigger one (bytes.byteOffset = ${offset}).`,
          BYTE_OFFSET_HINT,
        );
      }
      throw error;
    }
  } finally {
    await reference?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const BYTE_OFFSET_HINT =
  "A Uint8Array can be a window into a bigger ArrayBuffer: byte i of the file is bytes.buffer[bytes.byteOffset + i]. " +
  "Build views with new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), or slice with bytes.subarray.";

export default defineExercise<Exports>({
  title: "Reading a safetensors header",
  teaches: "the safetensors layout (u64 little-endian length, JSON header, data offsets), DataView, byteOffset",
  checks: [
    {
      name: "readHeader reads the 8-byte little-endian header length",
      hint: "new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true): true = little-endian. Number(...) turns the BigInt into a number.",
      run: ({ readHeader }, random) =>
        withRandomFile(random, ({ bytes, reference }) => {
          const { headerLength } = readHeader(bytes);
          if (headerLength !== reference.headerByteLength) {
            fail(
              `headerLength is ${String(headerLength)} (${typeof headerLength}), expected the number ${reference.headerByteLength}.`,
            );
          }
        }),
    },
    {
      name: "readHeader lists every tensor with its dtype, shape and data offsets, and the metadata",
      hint:
        'Parse bytes 8 .. 8 + N as JSON (new TextDecoder().decode(bytes.subarray(8, 8 + N))). The key "__metadata__" ' +
        "is not a tensor; every other key is, with fields dtype, shape and data_offsets.",
      run: ({ readHeader }, random) =>
        withRandomFile(random, ({ bytes, reference }) => {
          const { tensors, metadata } = readHeader(bytes);
          if (typeof tensors !== "object" || tensors === null)
            fail("readHeader(...).tensors should be an object from name to entry.");
          expectEqualArrays(
            Object.keys(tensors).sort(),
            reference.names().sort(),
            "the tensor names",
            'Skip the "__metadata__" key: it is not a tensor.',
          );
          for (const name of reference.names()) {
            const info = reference.info(name);
            const entry = tensors[name];
            if (entry?.dtype !== info.dtype)
              fail(`tensor "${name}" has dtype ${entry?.dtype}, expected ${info.dtype}.`);
            expectEqualArrays(entry.shape, info.shape, `the shape of "${name}"`);
            expectEqualArrays(entry.dataOffsets, info.dataOffsets, `the dataOffsets of "${name}"`);
          }
          if (JSON.stringify(metadata) !== JSON.stringify(reference.metadata)) {
            fail(`metadata is ${JSON.stringify(metadata)}, expected ${JSON.stringify(reference.metadata)}.`);
          }
        }),
    },
    {
      name: "readFloat32 reads each F32 tensor's values (a scalar too)",
      hint:
        "The tensor's bytes are at 8 + N + begin .. 8 + N + end of the file: data_offsets count from the start of the " +
        "data, after the header. Read value i with view.getFloat32(start + 4 * i, true).",
      run: ({ readFloat32 }, random) =>
        withRandomFile(random, async ({ bytes, reference, float32Names }) => {
          for (const name of float32Names) {
            const expected = await reference.readTensor(name);
            const result = readFloat32(bytes, name);
            expectEqualArrays(result?.shape, expected.shape, `the shape of "${name}"`);
            expectCloseArrays(result.data, expected.data, `the values of "${name}"`, { atol: 0, rtol: 0 });
          }
        }),
    },
    {
      name: "readFloat32 throws an error for a missing name or a tensor that is not F32",
      hint: 'Check the header entry before reading: no entry → throw an Error naming the tensor; dtype !== "F32" → throw too.',
      run: ({ readFloat32 }, random) =>
        withRandomFile(random, async ({ bytes, otherNames }) => {
          await expectRejects(async () => readFloat32(bytes, "no.such.tensor"), 'readFloat32(bytes, "no.such.tensor")');
          for (const name of otherNames)
            await expectRejects(async () => readFloat32(bytes, name), `readFloat32 of the non-F32 tensor "${name}"`);
        }),
    },
  ],
});
