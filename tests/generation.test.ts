import { beforeAll, describe, expect, it } from "vitest";
import { argmax, generate, GPT, initBackend, nextTokenProbabilities, Random, sampleNextToken, tf } from "gpt-course";

beforeAll(async () => {
  await initBackend();
});

function randomLogits(n: number, seed: number): number[] {
  const random = new Random(seed);
  return Array.from({ length: n }, () => random.next() * 8 - 4);
}

describe("sampling", () => {
  it("top-k only ever picks one of the k most likely tokens", () => {
    const logits = randomLogits(50, 1);
    const allowed = new Set([...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, 5));
    const random = new Random(2);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(sampleNextToken(logits, { topK: 5 }, random));
    expect([...seen].every((id) => allowed.has(id))).toBe(true);
    expect(seen.size).toBe(5); // and all of them do get picked
  });

  it("top-p keeps the smallest set of most likely tokens reaching probability p", () => {
    const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];
    const p = nextTokenProbabilities(logits, { topP: 0.75 });
    expect(Array.from(p).map((x) => +x.toFixed(6))).toEqual([0.625, 0.375, 0, 0]); // 0.5 + 0.3 ≥ 0.75
    const random = new Random(3);
    for (let i = 0; i < 1000; i++) expect([0, 1]).toContain(sampleNextToken(logits, { topP: 0.75 }, random));
  });

  it("temperature sharpens and flattens the distribution; 0 is greedy", () => {
    const logits = [2, 1, 0];
    const cold = nextTokenProbabilities(logits, { temperature: 0.5 });
    const warm = nextTokenProbabilities(logits, { temperature: 2 });
    const plain = nextTokenProbabilities(logits);
    expect(cold[0]).toBeGreaterThan(plain[0]);
    expect(warm[0]).toBeLessThan(plain[0]);
    expect(Array.from(nextTokenProbabilities(logits, { temperature: 0 }))).toEqual([1, 0, 0]);
    expect(sampleNextToken(logits, { temperature: 0 }, new Random(1))).toBe(argmax(logits));
    const sum = Array.from(plain).reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(1, 12);
    expect(plain[0] / plain[1]).toBeCloseTo(Math.E, 10); // softmax: ratios are e^(difference)
  });

  it("sampled frequencies follow the distribution", () => {
    const logits = [Math.log(0.6), Math.log(0.3), Math.log(0.1)];
    const random = new Random(11);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sampleNextToken(logits, {}, random)]++;
    // Within 4 standard deviations of a binomial count: |f − p| < 4·√(p(1 − p)/n) (0.014 for p = 0.6).
    [0.6, 0.3, 0.1].forEach((p, i) =>
      expect(Math.abs(counts[i] / 20000 - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / 20000)),
    );
  });

  it("rejects bad options clearly", () => {
    expect(() => nextTokenProbabilities([1, 2], { topK: 0 })).toThrow(/topK must be a positive integer/);
    expect(() => nextTokenProbabilities([1, 2], { topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
    expect(() => nextTokenProbabilities([1, 2], { temperature: -1 })).toThrow(/temperature must be a number ≥ 0/);
  });
});

describe("generate", () => {
  let model: GPT;
  beforeAll(() => {
    model = new GPT({ preset: "tiny", seed: 5 }); // context 16
  });
  const prompt = [1, 2, 3, 4, 5];

  it("gives the same tokens with and without the KV cache, also past the context length", async () => {
    for (const options of [
      { temperature: 0 },
      { temperature: 1, topK: 10, seed: 4 },
      { temperature: 0.8, topP: 0.9, seed: 9, numSequences: 3 },
    ]) {
      const cached = await generate(model, prompt, { maxNewTokens: 30, useCache: true, ...options }); // 35 > 16: the window slides
      const uncached = await generate(model, prompt, { maxNewTokens: 30, useCache: false, ...options });
      expect(cached.tokens).toEqual(uncached.tokens);
      expect(cached.tokens[0]).toHaveLength(30);
    }
  });

  it("greedy generation picks the argmax of the model's last logits", async () => {
    const { tokens } = await generate(model, prompt, { maxNewTokens: 1, temperature: 0 });
    const expected = tf.tidy(() => {
      const logits = model.forward(tf.tensor2d([prompt], [1, prompt.length], "int32"));
      return argmax(logits.slice([0, prompt.length - 1, 0], [1, 1, 65]).dataSync());
    });
    expect(tokens[0][0]).toBe(expected);
  });

  it("is reproducible with a seed and varies without the same seed", async () => {
    const a = await generate(model, prompt, { maxNewTokens: 20, seed: 1 });
    const b = await generate(model, prompt, { maxNewTokens: 20, seed: 1 });
    const c = await generate(model, prompt, { maxNewTokens: 20, seed: 2 });
    expect(a.tokens).toEqual(b.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it("stops at a stop token, streams every token, and frees its tensors", async () => {
    const free = await generate(model, prompt, { maxNewTokens: 20, temperature: 0 });
    const stopAt = free.tokens[0][5];
    const streamed: number[] = [];
    const before = tf.memory().numTensors;
    const stopped = await generate(model, prompt, {
      maxNewTokens: 20,
      temperature: 0,
      stopTokens: [stopAt],
      onToken: (t) => streamed.push(t),
    });
    expect(tf.memory().numTensors).toBe(before);
    const firstStop = free.tokens[0].indexOf(stopAt);
    expect(stopped.tokens[0]).toEqual(free.tokens[0].slice(0, firstStop));
    expect(stopped.finishReason).toEqual(["stop"]);
    expect(streamed).toEqual(stopped.tokens[0]);
  });

  it("several sequences with stop tokens: each stops on its own, the others go on, with and without the cache", async () => {
    const free = await generate(model, prompt, { maxNewTokens: 30, temperature: 1.5, numSequences: 6, seed: 3 });
    // A token that some sequences write and others do not, so that some stop early and some run to the end.
    const counts = new Map<number, number>();
    for (const sequence of free.tokens) for (const id of new Set(sequence)) counts.set(id, (counts.get(id) ?? 0) + 1);
    const stopAt = [...counts].find(([, n]) => n >= 2 && n <= 4)![0];
    const streamed: number[][] = free.tokens.map(() => []);
    const options = { maxNewTokens: 30, temperature: 1.5, numSequences: 6, seed: 3, stopTokens: [stopAt] };
    const before = tf.memory().numTensors;
    const cached = await generate(model, prompt, { ...options, onToken: (id, s) => streamed[s].push(id) });
    const uncached = await generate(model, prompt, { ...options, useCache: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(cached.tokens).toEqual(uncached.tokens);
    expect(cached.finishReason).toEqual(uncached.finishReason);
    expect(streamed).toEqual(cached.tokens);
    expect(cached.finishReason).toContain("stop");
    expect(cached.finishReason).toContain("length");
    cached.tokens.forEach((tokens, s) => {
      expect(tokens).not.toContain(stopAt);
      if (cached.finishReason[s] === "length") expect(tokens).toHaveLength(30);
      else expect(tokens.length).toBeLessThan(30);
    });
  });

  it("stops when aborted", async () => {
    const controller = new AbortController();
    const result = await generate(model, prompt, {
      maxNewTokens: 50,
      signal: controller.signal,
      onToken: (_, __) => controller.abort(),
    });
    expect(result.tokens[0]).toHaveLength(1);
    expect(result.finishReason).toEqual(["aborted"]);
  });

  it("rejects an empty prompt and bad counts", async () => {
    await expect(generate(model, [], { maxNewTokens: 5 })).rejects.toThrow(/prompt is empty/);
    await expect(generate(model, prompt, { maxNewTokens: -1 })).rejects.toThrow(/maxNewTokens/);
    await expect(generate(model, [99], { maxNewTokens: 1 })).rejects.toThrow(/out of range/);
    await expect(generate(model, [1, 1.5], { maxNewTokens: 1 })).rejects.toThrow(/prompt\[1\] is 1.5, not an integer/);
    await expect(generate(model, [Number.NaN], { maxNewTokens: 1 })).rejects.toThrow(
      /prompt\[0\] is NaN, not an integer/,
    );
  });
});
