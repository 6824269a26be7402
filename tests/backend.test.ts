/**
 * Backend selection (lib/backend/backend.ts): explicit names, the automatic choice, the GPT_BACKEND
 * environment variable, errors for unknown and unavailable backends, and cpu/wasm agreement on a GPT.
 *
 * Relative error: max |a − b| / max(1, max |b|) (tests/reference/helpers.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { availableBackends, backendNames, crossEntropy, GPT, initBackend, tf } from "gpt-course";
import { randomIds, randomizeParameters, relError, Rng, type Nested } from "./reference/helpers.js";

const savedEnv = process.env.GPT_BACKEND;

beforeEach(() => {
  delete process.env.GPT_BACKEND;
});

afterEach(() => {
  if (savedEnv === undefined) delete process.env.GPT_BACKEND;
  else process.env.GPT_BACKEND = savedEnv;
});

describe("initBackend", () => {
  // First in the file, while nothing is selected yet: the automatic choice is the first available backend.
  it("without a name picks the first available in the order tensorflow, webgpu, wasm, cpu", async () => {
    const info = await initBackend();
    const available = await availableBackends();
    expect(info.name).toBe(available[0]);
    expect(tf.getBackend()).toBe(info.name);
    expect(available).not.toContain("tensorflow"); // not installed here
    expect(info.name).not.toBe("cpu"); // wasm is installed, and faster
  });

  it("lists the backends in order of preference", () => {
    expect([...backendNames]).toEqual(["tensorflow", "webgpu", "wasm", "cpu"]);
  });

  it('"cpu" and "wasm" start, report their names and descriptions, and can be switched back and forth', async () => {
    const cpu = await initBackend("cpu");
    expect(cpu.name).toBe("cpu");
    expect(cpu.description).toMatch(/JavaScript/);
    expect(tf.getBackend()).toBe("cpu");
    const wasm = await initBackend("wasm");
    expect(wasm.name).toBe("wasm");
    expect(wasm.description).toMatch(/^WebAssembly \((SIMD|no SIMD)\b/);
    expect(tf.getBackend()).toBe("wasm");
    expect(await initBackend("wasm")).toEqual(wasm); // again: same answer
    expect((await initBackend("cpu")).name).toBe("cpu");
    expect(tf.getBackend()).toBe("cpu");
  });

  it("an unknown name is an error that lists the choices", async () => {
    await initBackend("cpu");
    await expect(initBackend("gpu")).rejects.toThrow(
      /Unknown backend "gpu"\. Choose one of: tensorflow, webgpu, wasm, cpu\./,
    );
    await expect(initBackend("WASM")).rejects.toThrow(/Unknown backend "WASM"/);
    expect(tf.getBackend()).toBe("cpu");
  });

  it('an unavailable backend ("tensorflow", not installed) is an error that lists what is available', async () => {
    await initBackend("wasm");
    const available = await availableBackends();
    expect(available).toEqual(expect.arrayContaining(["wasm", "cpu"]));
    let message = "";
    try {
      await initBackend("tensorflow");
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^Backend "tensorflow" is not available here \(tensorflow: install @tensorflow\/tfjs-node/);
    expect(message).toContain(`Available: ${available.join(", ")}.`);
    expect(message).toMatch(/Unset GPT_BACKEND/);
    expect(tf.getBackend(), "the failed attempt leaves the current backend in place").toBe("wasm");
  });

  it("availableBackends restores the current backend", async () => {
    await initBackend("cpu");
    await availableBackends();
    expect(tf.getBackend()).toBe("cpu");
    await initBackend("wasm");
    await availableBackends();
    expect(tf.getBackend()).toBe("wasm");
  });
});

describe("GPT_BACKEND environment variable", () => {
  it("selects the backend when no name is given", async () => {
    await initBackend("wasm");
    process.env.GPT_BACKEND = "cpu";
    expect((await initBackend()).name).toBe("cpu");
    expect(tf.getBackend()).toBe("cpu");
    process.env.GPT_BACKEND = "wasm";
    expect((await initBackend()).name).toBe("wasm");
    expect(tf.getBackend()).toBe("wasm");
  });

  it("an explicit argument wins over GPT_BACKEND", async () => {
    process.env.GPT_BACKEND = "wasm";
    expect((await initBackend("cpu")).name).toBe("cpu");
    expect(tf.getBackend()).toBe("cpu");
  });

  it("an unknown or unavailable GPT_BACKEND is an error naming it", async () => {
    process.env.GPT_BACKEND = "cuda";
    await expect(initBackend()).rejects.toThrow(
      /Unknown backend "cuda"\. Choose one of: tensorflow, webgpu, wasm, cpu/,
    );
    process.env.GPT_BACKEND = "tensorflow";
    await expect(initBackend()).rejects.toThrow(/Backend "tensorflow" is not available here.*Available: .*wasm/);
  });

  it("an empty GPT_BACKEND counts as unset", async () => {
    process.env.GPT_BACKEND = "";
    const info = await initBackend();
    expect((backendNames as readonly string[]).includes(info.name)).toBe(true);
  });
});

describe("cpu and wasm agree", () => {
  it("on a tiny GPT's logits (1e-5) and gradients (1e-4)", async () => {
    await initBackend("cpu");
    const model = new GPT({
      vocabSize: 17,
      contextLength: 8,
      numLayers: 2,
      numHeads: 2,
      embeddingDim: 16,
      tieWeights: false,
      seed: 3,
    });
    randomizeParameters(model, 200);
    const rng = new Rng(201);
    const ids = randomIds(2, 8, 17, rng);
    const targets = randomIds(2, 8, 17, rng);

    const run = () => {
      const x = tf.tensor2d(ids, [2, 8], "int32");
      const y = tf.tensor2d(targets, [2, 8], "int32");
      const logits = model.forward(x);
      const out = logits.arraySync() as Nested;
      const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(x), y));
      const gradValues = model.parameters().map((v) => Array.from(grads[v.name].dataSync()));
      const loss = value.dataSync()[0];
      tf.dispose([x, y, logits, value, ...Object.values(grads)]);
      return { out, gradValues, loss };
    };

    const onCpu = run();
    await initBackend("wasm");
    expect(tf.getBackend()).toBe("wasm");
    const onWasm = run();
    expect(relError(onWasm.out, onCpu.out)).toBeLessThan(1e-5);
    expect(Math.abs(onWasm.loss - onCpu.loss)).toBeLessThan(1e-5);
    model.parameters().forEach((v, i) => {
      const name = model.namedParameters()[i][0];
      expect(relError(onWasm.gradValues[i], onCpu.gradValues[i]), `gradient of ${name} (${v.shape})`).toBeLessThan(
        1e-4,
      );
    });
    model.dispose();
  });
});
