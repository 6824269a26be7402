import {
  addChatTokens,
  BPETokenizer,
  CHAT_TOKENS,
  CharTokenizer,
  type ChatMessage,
  chat,
  chatTokenIds,
  ConversationDataset,
  crossEntropy,
  evaluateExactMatch,
  extendVocabulary,
  fitToContext,
  GPT,
  IGNORE_INDEX,
  initBackend,
  loadCheckpoint,
  LoRAGPT,
  renderConversation,
  renderPrompt,
  saveCheckpoint,
  tf,
  Trainer,
} from "gpt-course";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

beforeAll(async () => {
  await initBackend();
});

const ALPHABET = "abcdefghijklmnopqrstuvwxyz ?!.,'<|>";
const tinyConfig = { contextLength: 32, numLayers: 2, numHeads: 2, embeddingDim: 16 };

/** A character tokenizer with the chat tokens; ids 0..34 are characters, 35..38 the chat tokens. */
function chatTokenizer(): CharTokenizer {
  const tokenizer = CharTokenizer.fromText(ALPHABET);
  addChatTokens(tokenizer);
  return tokenizer;
}

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });

describe("chat template", () => {
  it("adds four special tokens after the vocabulary, once", () => {
    const tokenizer = CharTokenizer.fromText(ALPHABET);
    const ids = addChatTokens(tokenizer);
    expect(ids).toEqual({ system: 35, user: 36, assistant: 37, end: 38 });
    expect(addChatTokens(tokenizer)).toEqual(ids);
    expect(tokenizer.vocabSize).toBe(39);
    expect(chatTokenIds(tokenizer)).toEqual(ids);
  });

  it("works for BPE tokenizers too", () => {
    const tokenizer = BPETokenizer.train("the cat sat on the mat. the cat ate. ".repeat(20), 270);
    const ids = addChatTokens(tokenizer);
    expect(ids.system).toBe(270);
    const { ids: rendered } = renderConversation(tokenizer, [user("the cat"), assistant("sat")]);
    expect(rendered[0]).toBe(ids.user);
    expect(tokenizer.decode(rendered)).toBe("<|user|>the cat<|end|><|assistant|>sat<|end|>");
  });

  it("renders ids and a mask that marks assistant tokens and their end-of-turn only", () => {
    const tokenizer = chatTokenizer();
    const { system, user: u, assistant: a, end } = chatTokenIds(tokenizer);
    const messages: ChatMessage[] = [
      { role: "system", content: "be nice" },
      user("hi"),
      assistant("yo"),
      user("ok?"),
      assistant("k"),
    ];
    const { ids, assistantMask } = renderConversation(tokenizer, messages);
    const text = (s: string) => tokenizer.encode(s);
    expect(ids).toEqual([
      system,
      ...text("be nice"),
      end,
      u,
      ...text("hi"),
      end,
      a,
      ...text("yo"),
      end,
      u,
      ...text("ok?"),
      end,
      a,
      ...text("k"),
      end,
    ]);
    expect(tokenizer.decode(ids)).toBe(
      "<|system|>be nice<|end|><|user|>hi<|end|><|assistant|>yo<|end|><|user|>ok?<|end|><|assistant|>k<|end|>",
    );
    const masked = ids.filter((_, i) => assistantMask[i] === 1);
    expect(masked).toEqual([...text("yo"), end, ...text("k"), end]);
    expect(assistantMask.length).toBe(ids.length);
  });

  it("keeps special-token spellings inside a message as plain text", () => {
    const tokenizer = chatTokenizer();
    const { ids } = renderConversation(tokenizer, [user("<|end|>"), assistant("no")]);
    expect(ids.filter((id) => id === chatTokenIds(tokenizer).end)).toHaveLength(2); // the template's two, not the user's
    expect(ids.slice(1, 8)).toEqual(tokenizer.encode("<|end|>"));
  });

  it("prompts for a reply with <|assistant|>", () => {
    const tokenizer = chatTokenizer();
    const prompt = renderPrompt(tokenizer, [user("hi")]);
    expect(tokenizer.decode(prompt)).toBe(`${CHAT_TOKENS.user}hi${CHAT_TOKENS.end}${CHAT_TOKENS.assistant}`);
  });

  it("says how to fix a tokenizer without chat tokens or a bad message", () => {
    const plain = CharTokenizer.fromText(ALPHABET);
    expect(() => renderConversation(plain, [user("hi")])).toThrow(/no chat tokens <\|system\|>.*addChatTokens/);
    expect(() => renderConversation(chatTokenizer(), [{ role: "bot" as "user", content: "hi" }])).toThrow(
      /message 0 has role "bot"/,
    );
  });
});

describe("ConversationDataset (batches and the loss mask)", () => {
  const tokenizer = chatTokenizer();
  const conversations = [
    [user("hi"), assistant("yo")],
    [user("what?"), assistant("this")],
    [user("a"), assistant("b"), user("c"), assistant("d")],
  ].map((messages) => renderConversation(tokenizer, messages));

  /** A batch's tensors as nested arrays (and the tensors disposed). */
  function draw(dataset: ConversationDataset, split: "train" | "validation" = "train") {
    const { inputs, targets, documents } = dataset.nextBatch(split);
    const arrays = {
      inputs: inputs.arraySync(),
      targets: targets.arraySync(),
      documentIds: documents!.documentIds.arraySync(),
      positions: documents!.positions.arraySync(),
    };
    tf.dispose([inputs, targets, documents!.documentIds, documents!.positions]);
    return arrays;
  }

  it("packs whole conversations into a row, positions restarting at 0, and trains only on the next assistant token", () => {
    // 8 + 12 + 13 tokens fill 7 + 11 + 12 = 30 positions (a conversation's last token is only a target)
    const dataset = new ConversationDataset(
      { train: conversations, validation: conversations },
      { maxLength: 32, batchSize: 1 },
    );
    const { inputs, targets, documentIds, positions } = draw(dataset);
    expect(inputs[0].length).toBe(30);
    const starts = positions[0].flatMap((p, t) => (p === 0 ? [t] : []));
    expect(starts.length).toBe(3);
    const packed = starts.map((start, d) => {
      const end = starts[d + 1] ?? 30;
      expect(documentIds[0].slice(start, end)).toEqual(Array(end - start).fill(d));
      expect(positions[0].slice(start, end)).toEqual(Array.from({ length: end - start }, (_, t) => t));
      const conversation = conversations.find(({ ids }) => ids.length === end - start + 1)!;
      const { ids, assistantMask } = conversation;
      expect(inputs[0].slice(start, end)).toEqual(ids.slice(0, -1));
      expect(targets[0].slice(start, end)).toEqual(
        ids.slice(1).map((id, t) => (assistantMask[t + 1] === 1 ? id : IGNORE_INDEX)),
      );
      return conversation;
    });
    expect(new Set(packed)).toEqual(new Set(conversations));
    const short = starts[packed.findIndex(({ ids }) => ids.length === 8)];
    const trained = targets[0]
      .slice(short, short + 7)
      .filter((t) => t !== IGNORE_INDEX)
      .map((id) => tokenizer.decode([id]))
      .join("");
    expect(trained).toBe("yo<|end|>");
  });

  it("starts a new row when the next conversation does not fit, pads rows as a document of their own, and visits every conversation once per pass", () => {
    const ofLength = (n: number) => ({
      ids: Array.from({ length: n }, (_, i) => n * 10 + i),
      assistantMask: [0, ...Array(n - 1).fill(1)],
    });
    const mixed = [9, 3, 7, 5, 8, 2, 6, 4].map(ofLength); // 8 + 2 + 6 + 4 + 7 + 1 + 5 + 3 = 36 positions
    const dataset = new ConversationDataset(
      { train: mixed, validation: mixed },
      { maxLength: 9, batchSize: 3, seed: 3 },
    );
    const seen: number[] = [];
    let pendingFirst: number | undefined; // the first conversation of the next row, to check it did not fit
    let previousRowUsed = 0;
    for (let batch = 0; batch < 4; batch++) {
      const { inputs, documentIds, positions } = draw(dataset);
      inputs.forEach((row, b) => {
        const used = documentIds[b].filter((d) => d >= 0).length;
        expect(documentIds[b].slice(used)).toEqual(Array(row.length - used).fill(-1)); // padding comes last
        expect(positions[b].slice(used)).toEqual(Array(row.length - used).fill(0));
        const lengths = positions[b]
          .slice(0, used)
          .flatMap((p, t) => (p === 0 ? [t] : []))
          .map((start, d, starts) => (starts[d + 1] ?? used) - start + 1);
        if (pendingFirst !== undefined) expect(previousRowUsed + lengths[0] - 1).toBeGreaterThan(8);
        seen.push(...lengths);
        pendingFirst = lengths[0];
        previousRowUsed = used;
      });
    }
    expect(seen.slice(0, 8).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]); // one pass: each once
    expect(seen.slice(8, 16).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("a packed row trains exactly like its conversations in rows of their own", () => {
    const model = new GPT({ ...tinyConfig, vocabSize: tokenizer.vocabSize, seed: 5 });
    const packedData = new ConversationDataset(
      { train: conversations, validation: conversations },
      { maxLength: 32, batchSize: 1 },
    );
    const packed = packedData.nextBatch("train");
    const lossAndGradients = (loss: () => tf.Scalar) => {
      const { value, grads } = tf.variableGrads(loss, model.parameters());
      const result = {
        loss: value.dataSync()[0],
        gradients: Object.values(grads).map((g) => Array.from(g.dataSync())),
      };
      tf.dispose([value, ...Object.values(grads)]);
      return result;
    };
    const fromPacked = lossAndGradients(() =>
      crossEntropy(model.forward(packed.inputs, { documents: packed.documents }), packed.targets),
    );
    // the same conversations one per row, from position 0, padded at the end: what packing must reproduce
    const T = 12;
    const rows = conversations.map(({ ids }) => [...ids.slice(0, -1), ...Array(T).fill(0)].slice(0, T));
    const targetRows = conversations.map(({ ids, assistantMask }) =>
      [
        ...ids.slice(1).map((id, t) => (assistantMask[t + 1] === 1 ? id : IGNORE_INDEX)),
        ...Array(T).fill(IGNORE_INDEX),
      ].slice(0, T),
    );
    const inputs = tf.tensor2d(rows, undefined, "int32");
    const targets = tf.tensor2d(targetRows, undefined, "int32");
    const separate = lossAndGradients(() => crossEntropy(model.forward(inputs), targets));
    expect(fromPacked.loss).toBeCloseTo(separate.loss, 5);
    fromPacked.gradients.forEach((g, i) => g.forEach((v, j) => expect(v).toBeCloseTo(separate.gradients[i][j], 6)));
    // without the document ids and positions the packed row is a different computation
    const naive = lossAndGradients(() => crossEntropy(model.forward(packed.inputs), packed.targets));
    expect(Math.abs(naive.loss - separate.loss)).toBeGreaterThan(1e-3);
    tf.dispose([
      inputs,
      targets,
      packed.inputs,
      packed.targets,
      packed.documents!.documentIds,
      packed.documents!.positions,
    ]);
    model.dispose();
  });

  it("scoring only the graded positions (what the Trainer does) gives the loss and gradients of scoring all", async () => {
    const make = () =>
      new ConversationDataset(
        { train: conversations, validation: conversations },
        { maxLength: 32, batchSize: 2, seed: 9 },
      );
    const model = new GPT({ ...tinyConfig, vocabSize: tokenizer.vocabSize, seed: 4 });
    const { inputs, targets, documents } = make().nextBatch("train");
    const flatTargets = targets.reshape([-1]);
    const graded = tf.tensor1d(
      Array.from(flatTargets.dataSync()).flatMap((t, i) => (t === IGNORE_INDEX ? [] : [i])),
      "int32",
    );
    const all = tf.variableGrads(() => crossEntropy(model.forward(inputs, { documents }), targets), model.parameters());
    const some = tf.variableGrads(() => {
      const hidden = model.features(inputs, { documents }).reshape([-1, tinyConfig.embeddingDim]);
      return crossEntropy(model.head(tf.gather(hidden, graded)), tf.gather(flatTargets, graded));
    }, model.parameters());
    expect(graded.size).toBeLessThan(targets.size / 2);
    expect(some.value.dataSync()[0]).toBeCloseTo(all.value.dataSync()[0], 5);
    for (const name of Object.keys(all.grads)) {
      const difference = tf.tidy(() => tf.max(tf.abs(all.grads[name].sub(some.grads[name]))).dataSync()[0]);
      expect(difference, name).toBeLessThan(1e-6);
    }
    // the Trainer's first step reports that same loss
    const trainer = new Trainer(model, make(), { maxSteps: 1, learningRate: 1e-3, warmupSteps: 0, evalInterval: 0 });
    expect((await trainer.trainStep()).loss).toBeCloseTo(all.value.dataSync()[0], 5);
    trainer.dispose();
    tf.dispose([
      inputs,
      targets,
      documents!.documentIds,
      documents!.positions,
      flatTargets,
      graded,
      all.value,
      some.value,
      ...Object.values(all.grads),
      ...Object.values(some.grads),
    ]);
    model.dispose();
  });

  it("visits conversations in a seeded order and resumes exactly from its state", () => {
    const make = () =>
      new ConversationDataset(
        { train: conversations, validation: conversations },
        { maxLength: 16, batchSize: 2, seed: 5 },
      );
    const first = make();
    const second = make();
    for (let i = 0; i < 3; i++) expect(draw(second)).toEqual(draw(first));
    const state = JSON.parse(JSON.stringify(first.getState()));
    const expected = Array.from({ length: 5 }, () => draw(first));
    const resumed = make();
    resumed.setState(state);
    expect(Array.from({ length: 5 }, () => draw(resumed))).toEqual(expected);
    expect(() => resumed.setState({ train: { used: 1 } })).toThrow(/malformed state/);
  });

  it("rejects a conversation longer than a row", () => {
    expect(
      () => new ConversationDataset({ train: conversations, validation: conversations }, { maxLength: 9 }),
    ).toThrow(/train conversation 1 is 13 tokens long, more than maxLength 9/);
  });
});

describe("loss masking", () => {
  const tokenizer = chatTokenizer();

  /** Loss and gradients of a tiny GPT on one conversation, through the fine-tuning data path. */
  function lossAndGradients(messages: ChatMessage[], mask: "assistant" | "everything" = "assistant") {
    const model = new GPT({ ...tinyConfig, vocabSize: tokenizer.vocabSize, seed: 3 });
    const rendered = renderConversation(tokenizer, messages);
    const conversation = mask === "assistant" ? rendered : { ...rendered, assistantMask: rendered.ids.map(() => 1) };
    const dataset = new ConversationDataset(
      { train: [conversation], validation: [conversation] },
      { maxLength: conversation.ids.length, batchSize: 1 },
    );
    const { inputs, targets } = dataset.nextBatch("train");
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(inputs), targets), model.parameters());
    const result = { loss: value.dataSync()[0], gradients: Object.values(grads).map((g) => Array.from(g.dataSync())) };
    tf.dispose([inputs, targets, value, ...Object.values(grads)]);
    model.dispose();
    return result;
  }

  const expectSameGradients = (a: number[][], b: number[][]) =>
    a.forEach((g, i) => g.forEach((v, j) => expect(v).toBeCloseTo(b[i][j], 7)));
  const maxDifference = (a: number[][], b: number[][]) =>
    Math.max(...a.flatMap((g, i) => g.map((v, j) => Math.abs(v - b[i][j]))));

  it("tokens under the mask change the loss and the gradients", () => {
    const base = lossAndGradients([user("hi there"), assistant("yo")]);
    const changed = lossAndGradients([user("hi there"), assistant("ya")]);
    expect(changed.loss).not.toBeCloseTo(base.loss, 4);
    expect(maxDifference(base.gradients, changed.gradients)).toBeGreaterThan(1e-4);
  });

  it("tokens outside the mask do not: a user turn after the last answer changes nothing", () => {
    // The trailing user message is not an assistant token, so it is never a target; causal attention
    // keeps the earlier (trained) positions from seeing it. Only the mask makes that so:
    const base = lossAndGradients([user("hi"), assistant("yo"), user("what now")]);
    const changed = lossAndGradients([user("hi"), assistant("yo"), user("who knows")]);
    expect(changed.loss).toBeCloseTo(base.loss, 6);
    expectSameGradients(changed.gradients, base.gradients);
    // ...whereas training on every token would change both.
    const unmasked = lossAndGradients([user("hi"), assistant("yo"), user("what now")], "everything");
    const unmaskedChanged = lossAndGradients([user("hi"), assistant("yo"), user("who knows")], "everything");
    expect(unmaskedChanged.loss).not.toBeCloseTo(unmasked.loss, 4);
  });

  it("the loss is the mean over assistant tokens, and pushes no logit where the target is not one", () => {
    const rendered = renderConversation(tokenizer, [user("hi"), assistant("yo"), user("ok"), assistant("k")]);
    const dataset = new ConversationDataset(
      { train: [rendered], validation: [rendered] },
      { maxLength: rendered.ids.length, batchSize: 1 },
    );
    const { inputs, targets } = dataset.nextBatch("train");
    const logits = tf.randomNormal([1, inputs.shape[1], tokenizer.vocabSize], 0, 1, "float32", 7);
    const [dLogits] = tf.grads((x: tf.Tensor) => crossEntropy(x, targets))([logits]);
    const targetRow = targets.arraySync()[0];
    const gradientRows = (dLogits.arraySync() as number[][][])[0];
    const logProbabilities = (tf.logSoftmax(logits).arraySync() as number[][][])[0];
    const trained = targetRow.map((target, t) => [target, t]).filter(([target]) => target !== IGNORE_INDEX);
    expect(trained.length).toBe(5); // "yo", <|end|>, "k", <|end|>
    const expectedLoss = -trained.reduce((sum, [target, t]) => sum + logProbabilities[t][target], 0) / trained.length;
    expect(crossEntropy(logits, targets).dataSync()[0]).toBeCloseTo(expectedLoss, 5);
    targetRow.forEach((target, t) => {
      const norm = Math.hypot(...gradientRows[t]);
      if (target === IGNORE_INDEX) expect(norm).toBe(0);
      else expect(norm).toBeGreaterThan(0);
    });
    tf.dispose([inputs, targets, logits, dLogits]);
  });
});

describe("extendVocabulary", () => {
  it("keeps the model's predictions over the old tokens and adds rows for the new ones", () => {
    const tokenizer = CharTokenizer.fromText(ALPHABET);
    const model = new GPT({ ...tinyConfig, vocabSize: tokenizer.vocabSize });
    addChatTokens(tokenizer);
    const extended = extendVocabulary(model, tokenizer.vocabSize);
    expect(extended.config.vocabSize).toBe(39);
    const ids = tf.tensor2d([tokenizer.encode("hello there")], undefined, "int32");
    const before = model.forward(ids);
    const after = extended.forward(ids);
    const oldPart = after.slice([0, 0, 0], [-1, -1, 35]);
    expect(tf.max(tf.abs(oldPart.sub(before))).dataSync()[0]).toBeLessThan(1e-5);
    expect(extendVocabulary(extended, 39)).toBe(extended);
    expect(() => extendVocabulary(extended, 10)).toThrow(/≥ the model's 39/);
    tf.dispose([ids, before, after, oldPart]);
    model.dispose();
    extended.dispose();
  });
});

describe("chat()", () => {
  it("fits the context: oldest exchanges dropped first, the system message kept, then the last message cut", () => {
    const tokenizer = chatTokenizer();
    const system: ChatMessage = { role: "system", content: "be brief" };
    const history = [system, user("one"), assistant("a"), user("two"), assistant("b"), user("three?")];
    const full = renderPrompt(tokenizer, history).length;
    expect(fitToContext(tokenizer, history, full)).toEqual({
      prompt: renderPrompt(tokenizer, history),
      droppedMessages: 0,
      truncatedLastMessage: false,
    });
    const dropOne = fitToContext(tokenizer, history, full - 1);
    expect(dropOne.droppedMessages).toBe(2);
    expect(dropOne.prompt).toEqual(renderPrompt(tokenizer, [system, user("two"), assistant("b"), user("three?")]));
    const onlyLast = fitToContext(tokenizer, history, renderPrompt(tokenizer, [system, user("three?")]).length);
    expect(onlyLast.droppedMessages).toBe(4);
    const cut = fitToContext(tokenizer, history, renderPrompt(tokenizer, [system, user("three?")]).length - 2);
    expect(cut.truncatedLastMessage).toBe(true);
    expect(cut.prompt).toEqual(renderPrompt(tokenizer, [system, user("ree?")]));
    expect(() => fitToContext(tokenizer, history, 10)).toThrow(/system message alone takes/);
  });

  it("after fine-tuning on a few conversations, answers them, streams the reply and stops at <|end|>", async () => {
    const tokenizer = chatTokenizer();
    const examples = [
      { task: "greeting", messages: [user("hi"), assistant("hello")] },
      { task: "greeting", messages: [user("bye"), assistant("see you")] },
      { task: "question", messages: [user("who?"), assistant("me")] },
      { task: "question", messages: [user("why?"), assistant("because")] },
    ];
    const rendered = examples.map(({ messages }) => renderConversation(tokenizer, messages));
    const model = new GPT({ ...tinyConfig, embeddingDim: 32, vocabSize: tokenizer.vocabSize });
    const dataset = new ConversationDataset({ train: rendered, validation: rendered }, { maxLength: 33, batchSize: 4 });
    const trainer = new Trainer(model, dataset, {
      maxSteps: 200,
      learningRate: 1e-2,
      minLearningRate: 1e-3,
      warmupSteps: 10,
      evalInterval: 0,
      weightDecay: 0,
    });
    await trainer.train({ progress: false });
    trainer.dispose();

    let streamed = "";
    const reply = await chat(model, tokenizer, [user("bye")], {
      temperature: 0,
      onToken: (text) => (streamed += text),
    });
    expect(reply).toMatchObject({ text: "see you", finishReason: "stop", droppedMessages: 0 });
    expect(streamed).toBe("see you");

    const { tasks } = await evaluateExactMatch(model, tokenizer, examples);
    expect(tasks).toEqual([
      { task: "greeting", correct: 2, total: 2, accuracy: 1 },
      { task: "question", correct: 2, total: 2, accuracy: 1 },
    ]);

    const stop = new AbortController();
    stop.abort();
    expect((await chat(model, tokenizer, [user("hi")], { signal: stop.signal })).finishReason).toBe("aborted");
    const short = await chat(model, tokenizer, [user("why?")], { temperature: 0, maxNewTokens: 3 });
    expect(short).toMatchObject({ text: "bec", finishReason: "length" });
    model.dispose();
  });

  it("refuses a model whose vocabulary lacks the chat tokens", async () => {
    const tokenizer = chatTokenizer();
    const model = new GPT({ ...tinyConfig, vocabSize: 35 });
    await expect(chat(model, tokenizer, [user("hi")])).rejects.toThrow(/tokenizer has 39 ids but the model only 35/);
    model.dispose();
  });
});

describe("LoRA", () => {
  const maxAbsDifference = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(a.sub(b))).dataSync()[0]);

  it("starts as the base model, trains only the adapters (and the embedding), and merges into an equivalent plain GPT", async () => {
    const tokenizer = chatTokenizer();
    const base = new GPT({ ...tinyConfig, vocabSize: tokenizer.vocabSize });
    const lora = LoRAGPT.from(base, { rank: 2, alpha: 4 });
    const ids = tf.tensor2d([tokenizer.encode("hello there, who?")], undefined, "int32");
    const baseLogits = base.forward(ids);
    const loraLogits = lora.forward(ids);
    expect(maxAbsDifference(loraLogits, baseLogits)).toBe(0); // B = 0: no change yet

    const trainable = lora
      .namedParameters()
      .filter(([, v]) => v.trainable)
      .map(([name]) => name);
    expect(trainable).toContain("wte.weight");
    expect(trainable).toContain("lora.h.1.mlp.c_fc.A");
    expect(trainable.filter((name) => !name.startsWith("lora.") && name !== "wte.weight")).toEqual([]);
    expect(lora.adapters.size).toBe(2 * 4);
    const C = tinyConfig.embeddingDim;
    const adapterSize = 2 * (C + 3 * C + (C + C) + (C + 4 * C) + (4 * C + C)) * 2; // layers × Σ r·(in + out)
    expect(lora.numTrainableParameters()).toBe(adapterSize + tokenizer.vocabSize * C);

    const rendered = [renderConversation(tokenizer, [user("hi"), assistant("hello")])];
    const dataset = new ConversationDataset({ train: rendered, validation: rendered }, { maxLength: 33, batchSize: 2 });
    const frozenBefore = lora.h[0].attn.c_attn.weight.arraySync();
    const trainer = new Trainer(lora, dataset, { maxSteps: 5, learningRate: 1e-2, warmupSteps: 0, evalInterval: 0 });
    await trainer.train({ progress: false });
    trainer.dispose();
    expect(lora.h[0].attn.c_attn.weight.arraySync()).toEqual(frozenBefore);
    expect(
      Math.max(...Array.from((lora.adapters.get("h.0.attn.c_attn") as { B: tf.Variable }).B.dataSync()).map(Math.abs)),
    ).toBeGreaterThan(0);

    const merged = lora.merge();
    expect(merged).not.toBeInstanceOf(LoRAGPT);
    const trainedLogits = lora.forward(ids);
    const mergedLogits = merged.forward(ids);
    expect(maxAbsDifference(trainedLogits, baseLogits)).toBeGreaterThan(1e-3);
    expect(maxAbsDifference(mergedLogits, trainedLogits)).toBeLessThan(1e-4);

    const directory = mkdtempSync(join(tmpdir(), "lora-"));
    await saveCheckpoint(join(directory, "chat"), { model: merged, tokenizer });
    const loaded = await loadCheckpoint(join(directory, "chat"));
    const loadedLogits = loaded.model.forward(ids);
    expect(maxAbsDifference(loadedLogits, mergedLogits)).toBe(0);
    expect(loaded.tokenizer?.specialTokens).toEqual(tokenizer.specialTokens);
    rmSync(directory, { recursive: true, force: true });
    tf.dispose([ids, baseLogits, loraLogits, trainedLogits, mergedLogits, loadedLogits]);
    for (const model of [base, lora, merged, loaded.model]) model.dispose();
  });
});
