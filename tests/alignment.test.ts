/**
 * Preference tuning (lib/alignment): the DPO loss against a float64 computation, group advantages, the policy
 * gradient's direction on a toy policy, the rows that grade an answer, the data the course makes, and that the
 * Trainer runs both objectives without leaking tensors.
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  addChatTokens,
  answerRows,
  CharTokenizer,
  dpoLoss,
  dpoObjective,
  exactAnswerReward,
  GPT,
  groupAdvantages,
  IGNORE_INDEX,
  initBackend,
  PreferenceDataset,
  policyGradientObjective,
  RewardSampler,
  renderPrompt,
  targetLogProbabilities,
  tf,
  Trainer,
} from "gpt-course";
import {
  continentPracticeQuestions,
  instructionsFile,
  lastQuestions,
  NEW_CONTINENT_TEMPLATES,
  preferencePairs,
  readConversations,
  rejectedAnswer,
  rewardQuestions,
} from "course-data";

beforeAll(async () => {
  await initBackend();
});

const text = "What is 12 + 30? 12 + 30 is 42. Name the capital of Peru. Lima Asia Europe, 1234567890 -";
function chatModel() {
  const tokenizer = CharTokenizer.fromText(text);
  addChatTokens(tokenizer);
  const model = new GPT({ preset: "tiny", vocabSize: tokenizer.vocabSize, contextLength: 48, seed: 3 });
  return { tokenizer, model };
}

describe("DPO", () => {
  it("dpoLoss equals −ln σ(β[(π_w − ref_w) − (π_l − ref_l)]) in float64, averaged over pairs", () => {
    const values = (seed: number) => Array.from({ length: 6 }, (_, i) => -5 * Math.abs(Math.sin(seed * 13 + i * 7)));
    const [pw, pl, rw, rl] = [1, 2, 3, 4].map(values);
    const beta = 0.3;
    const expected =
      pw.reduce((sum, _, i) => {
        const margin = beta * (pw[i] - rw[i] - (pl[i] - rl[i]));
        return sum + Math.log(1 + Math.exp(-margin)); // −ln σ(m) = ln(1 + e^−m)
      }, 0) / pw.length;
    const loss = dpoLoss(tf.tensor1d(pw), tf.tensor1d(pl), tf.tensor1d(rw), tf.tensor1d(rl), beta);
    expect(loss.dataSync()[0]).toBeCloseTo(expected, 5);
    // at the start (policy = reference) every margin is 0 and the loss is ln 2
    expect(dpoLoss(tf.tensor1d(pw), tf.tensor1d(pl), tf.tensor1d(pw), tf.tensor1d(pl), beta).dataSync()[0]).toBeCloseTo(
      Math.LN2,
      6,
    );
  });
});

describe("DPO with the chosen answers' fine-tuning loss", () => {
  it("adds chosenWeight × the chosen answers' mean negative log-probability per token", () => {
    const { tokenizer, model } = chatModel();
    const { model: reference } = chatModel();
    const history = [{ role: "user" as const, content: "Name the capital of Peru." }];
    const pairs = [
      { history, chosen: "Lima", rejected: "Europe" },
      { history, chosen: "Asia", rejected: "Lima Lima" },
    ];
    const data = new PreferenceDataset(pairs, tokenizer, reference, { batchSize: 2, validationFraction: 0, seed: 1 });
    const batch = data.nextBatch("train");
    const plain = dpoObjective(0.5)(model, batch).dataSync()[0];
    const withChosen = dpoObjective(0.5, 0.25)(model, batch).dataSync()[0];
    // by hand: the chosen rows are the even rows; −ln π(y_w) summed over their graded tokens, per token
    const perToken = targetLogProbabilities(model.forward(batch.inputs) as tf.Tensor3D, batch.targets).arraySync();
    const targets = batch.targets.arraySync();
    let nll = 0;
    for (let row = 0; row < perToken.length; row += 2) {
      const graded = targets[row].filter((id) => id !== IGNORE_INDEX).length;
      nll += -perToken[row].reduce((a, b) => a + b, 0) / graded;
    }
    expect(withChosen - plain).toBeCloseTo((0.25 * nll) / 2, 4);
    tf.dispose([batch.inputs, batch.targets, batch.reference!]);
    model.dispose();
    reference.dispose();
  });
});

describe("policy gradient", () => {
  it("group advantages: centred and scaled per group; a group that scored alike gets 0", () => {
    const advantages = groupAdvantages([1, 0, 0, 0, 1, 1, 1, 1], 4);
    [Math.sqrt(3), -1 / Math.sqrt(3), -1 / Math.sqrt(3), -1 / Math.sqrt(3)].forEach((a, i) =>
      expect(advantages[i]).toBeCloseTo(a, 4),
    );
    expect(advantages.slice(4)).toEqual([0, 0, 0, 0]);
    expect(() => groupAdvantages([1, 0, 1], 2)).toThrow(/not groups of 2/);
    // without the division by the spread: r − mean, so a rare win weighs less
    expect(groupAdvantages([1, 0, 0, 0, 0.5, 0.5, 1, 0], 4, false)).toEqual([
      0.75, -0.25, -0.25, -0.25, 0, 0, 0.5, -0.5,
    ]);
  });

  it("one step makes the answer with a positive advantage more likely and the negative one less", () => {
    const { tokenizer, model } = chatModel();
    const history = [{ role: "user" as const, content: "What is 12 + 30?" }];
    const { inputs, targets } = answerRows(
      tokenizer,
      [
        { history, answer: "42" },
        { history, answer: "24" },
      ],
      48,
    );
    const logp = () =>
      tf.tidy(() =>
        Array.from(
          targetLogProbabilities(model.forward(inputs) as tf.Tensor3D, targets)
            .sum(1)
            .dataSync(),
        ),
      );
    const before = logp();
    const batch = {
      inputs,
      targets,
      reference: tf.tidy(() => targetLogProbabilities(model.forward(inputs) as tf.Tensor3D, targets)),
      advantages: tf.tensor1d([1, -1]),
    };
    const objective = policyGradientObjective(0.05);
    const { grads } = tf.variableGrads(() => objective(model, batch));
    const named = new Map(model.namedParameters().map(([, variable]) => [variable.name, variable]));
    for (const [name, gradient] of Object.entries(grads))
      named.get(name)!.assign(named.get(name)!.sub(gradient.mul(0.05))); // a plain gradient step
    const after = logp();
    expect(after[0]).toBeGreaterThan(before[0]);
    expect(after[1]).toBeLessThan(before[1]);
    tf.dispose([inputs, targets, batch.reference, batch.advantages, ...Object.values(grads)]);
    model.dispose();
  });

  it("the KL term is 0 when the policy is the reference, and positive once it moves", () => {
    const { tokenizer, model } = chatModel();
    const history = [{ role: "user" as const, content: "Name the capital of Peru." }];
    const { inputs, targets } = answerRows(tokenizer, [{ history, answer: "Lima" }], 48);
    const reference = tf.tidy(() => targetLogProbabilities(model.forward(inputs) as tf.Tensor3D, targets));
    const zero = tf.tensor1d([0]); // advantage 0: only the KL term remains
    const kl = () =>
      tf.tidy(() => policyGradientObjective(1)(model, { inputs, targets, reference, advantages: zero }).dataSync()[0]);
    expect(kl()).toBeCloseTo(0, 6);
    const bias = model.ln_f.bias!;
    bias.assign(bias.add(0.5));
    expect(kl()).toBeGreaterThan(1e-3);
    tf.dispose([inputs, targets, reference, zero]);
    model.dispose();
  });
});

describe("rows that grade an answer", () => {
  it("grade exactly the answer's tokens and its <|end|>, after the rendered question", () => {
    const { tokenizer } = chatModel();
    const history = [{ role: "user" as const, content: "What is 12 + 30?" }];
    const { inputs, targets } = answerRows(
      tokenizer,
      [
        { history, answer: "42" },
        { history, answer: "12 + 30 is 42" },
      ],
      48,
    );
    const prompt = renderPrompt(tokenizer, history);
    const rows = targets.arraySync() as number[][];
    const graded = rows.map((row) => row.filter((t) => t !== IGNORE_INDEX));
    const end = tokenizer.specialTokens["<|end|>"];
    expect(graded[0]).toEqual([...tokenizer.encode("42"), end]);
    expect(graded[1]).toEqual([...tokenizer.encode("12 + 30 is 42"), end]);
    expect((inputs.arraySync() as number[][])[0].slice(0, prompt.length)).toEqual(prompt);
    tf.dispose([inputs, targets]);
  });
});

describe("the course's preference data", () => {
  const conversations = [
    {
      id: "a",
      task: "addition",
      messages: [
        { role: "user" as const, content: "What is 12 + 30?" },
        { role: "assistant" as const, content: "12 + 30 is 42" },
      ],
    },
    {
      id: "b",
      task: "count",
      messages: [
        { role: "user" as const, content: "Count from 3 to 6." },
        { role: "assistant" as const, content: "3, 4, 5, 6" },
      ],
    },
    {
      id: "c",
      task: "continent",
      messages: [
        { role: "user" as const, content: "Where is Peru?" },
        { role: "assistant" as const, content: "South America" },
      ],
    },
    {
      id: "d",
      task: "continent",
      messages: [
        { role: "user" as const, content: "Where is Chad?" },
        { role: "assistant" as const, content: "Africa" },
      ],
    },
    {
      id: "e",
      task: "reverse",
      messages: [
        { role: "user" as const, content: "Reverse cat." },
        { role: "assistant" as const, content: "tac" },
      ],
    },
  ];

  it("rejected answers are plausible and wrong: a digit off, one number short, another continent", () => {
    const questions = lastQuestions(conversations);
    expect(questions[0]).toMatchObject({
      task: "addition",
      expected: "12 + 30 is 42",
      history: [{ role: "user", content: "What is 12 + 30?" }],
    });
    expect(rejectedAnswer(questions[0], questions, 0)).toBe("12 + 30 is 43");
    expect(rejectedAnswer(questions[0], questions, 3)).toBe("12 + 30 is 32");
    expect(rejectedAnswer(questions[1], questions, 0)).toBe("3, 4, 5");
    expect(rejectedAnswer(questions[2], questions, 0)).toBe("Africa");
    expect(rejectedAnswer(questions[4], questions, 0)).toBeUndefined();
    const pairs = preferencePairs(conversations, ["addition", "count", "continent", "reverse"]);
    expect(pairs.map((p) => p.task)).toEqual(["addition", "count", "continent", "continent"]);
    for (const pair of pairs) expect(pair.rejected).not.toBe(pair.chosen);
  });
});

describe("continent practice questions for RL", () => {
  const test = readConversations(instructionsFile("test"));
  const train = readConversations(instructionsFile("train"));
  const practice = continentPracticeQuestions(test);

  it("never ask a question that occurs anywhere in the test set", () => {
    const asked = new Set(test.flatMap((c) => c.messages.filter((m) => m.role === "user").map((m) => m.content)));
    const leaked = practice.filter((q) => asked.has(q.history[0].content));
    expect(leaked).toEqual([]);
    // and the test's continent questions are really asked in the templates practice leaves out for that country
    const continentTest = test.filter((c) => c.task === "continent");
    expect(continentTest.length).toBeGreaterThan(50);
    const countries = new Set(practice.map((q) => q.id.replace(/-\d+$/, ""))).size;
    expect(countries).toBeGreaterThan(200);
    expect(practice.length).toBeLessThanOrEqual(8 * countries - continentTest.length);
    expect(practice.length).toBeGreaterThan(7 * countries);
  });

  it("agree with the fine-tuning data's answers and add five phrasings it never uses", () => {
    const trainAnswers = new Map(
      lastQuestions(train.filter((c) => c.task === "continent")).map((q) => [q.history[0].content, q.expected]),
    );
    const shared = practice.filter((q) => trainAnswers.has(q.history[0].content));
    expect(shared.length).toBeGreaterThan(100);
    for (const q of shared) expect(q.expected).toBe(trainAnswers.get(q.history[0].content));
    const trainQuestions = new Set(train.flatMap((c) => c.messages.map((m) => m.content)));
    const fresh = practice.filter((q) => !trainQuestions.has(q.history[0].content));
    expect(fresh.length).toBeGreaterThanOrEqual(NEW_CONTINENT_TEMPLATES.length * 200);
    expect(new Set(practice.map((q) => q.expected))).toEqual(
      new Set(["Africa", "Antarctica", "Asia", "Europe", "North America", "Oceania", "South America"]),
    );
  });

  it("rewardQuestions mixes practice questions with a seeded draw of fine-tuning questions", () => {
    const plan = { continent: "practice" as const, capital: 5 };
    const questions = rewardQuestions(plan, train, test);
    expect(questions.filter((q) => q.task === "capital")).toHaveLength(5);
    expect(questions.filter((q) => q.task === "continent")).toHaveLength(practice.length);
    expect(rewardQuestions(plan, train, test)).toEqual(questions); // the same order every time
    expect(() => rewardQuestions({ count: "practice" }, train, test)).toThrow(/practice questions for continents only/);
    expect(() => rewardQuestions({ poetry: 3 }, train, test)).toThrow(/no training conversations of the task "poetry"/);
  });
});

describe("the Trainer with preference objectives", () => {
  it("DPO: runs, lowers its loss from ln 2 on the pairs, and leaks no tensors", async () => {
    const { tokenizer, model } = chatModel();
    const { model: reference } = chatModel();
    const history = [{ role: "user" as const, content: "Name the capital of Peru." }];
    const pairs = Array.from({ length: 8 }, () => ({ history, chosen: "Lima", rejected: "Europe" }));
    const data = new PreferenceDataset(pairs, tokenizer, reference, {
      batchSize: 4,
      validationFraction: 0.25,
      seed: 1,
    });
    const trainer = new Trainer(
      model,
      data,
      { maxSteps: 15, learningRate: 5e-3, warmupSteps: 1, evalInterval: 0 },
      dpoObjective(0.5),
    );
    const before = tf.memory().numTensors;
    const first = await trainer.trainStep();
    expect(first.loss).toBeCloseTo(Math.LN2, 4); // the policy starts as the reference
    await trainer.train({ progress: false });
    expect(trainer.history.steps.at(-1)!.loss).toBeLessThan(0.5);
    expect(tf.memory().numTensors).toBe(before);
    trainer.dispose();
    model.dispose();
    reference.dispose();
  });

  it("reinforcement learning: samples groups, scores them, steps, and leaks no tensors", async () => {
    const { tokenizer, model } = chatModel();
    const { model: reference } = chatModel();
    const questions = [
      { task: "capital", history: [{ role: "user" as const, content: "Name the capital of Peru." }], expected: "Lima" },
    ];
    const demonstrations = [
      { task: "addition", history: [{ role: "user" as const, content: "What is 2 + 3?" }], expected: "2 + 3 is 5" },
    ];
    const sampler = new RewardSampler(questions, demonstrations, tokenizer, model, reference, exactAnswerReward, {
      questionsPerBatch: 2,
      groupSize: 3,
      temperature: 1,
      divideByStd: true,
      maxNewTokens: 6,
      validationFraction: 0,
      seed: 1,
      replayRows: 2,
      replayWeight: 0.5,
    });
    // A batch: 2 questions × 3 sampled answers, then 2 replayed demonstrations graded on their expected answer.
    const batch = await sampler.nextBatch("train");
    expect(batch.inputs.shape[0]).toBe(8);
    expect(Array.from(batch.advantages!.dataSync()).slice(6)).toEqual([0.5, 0.5]);
    const replayedTargets = (batch.targets.arraySync() as number[][])[7].filter((id) => id >= 0);
    expect(tokenizer.decode(replayedTargets.slice(0, -1))).toBe("2 + 3 is 5"); // then <|end|>
    tf.dispose([batch.inputs, batch.targets, batch.reference!, batch.advantages!]);
    const trainer = new Trainer(
      model,
      sampler,
      { maxSteps: 2, learningRate: 1e-3, warmupSteps: 1, evalInterval: 0 },
      policyGradientObjective(0.05),
    );
    const before = tf.memory().numTensors;
    await trainer.train({ progress: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(sampler.history).toHaveLength(3); // the batch above and two training steps
    expect(
      () => new RewardSampler(questions, [], tokenizer, model, reference, exactAnswerReward, sampler.options),
    ).toThrow(/replayRows is 2, but no demonstrations were given/);
    expect(sampler.history[0].byTask.capital.answers).toBe(6);
    expect(exactAnswerReward(questions[0], " Lima ")).toBe(1);
    expect(exactAnswerReward(questions[0], "Lim")).toBe(0);
    trainer.dispose();
    model.dispose();
    reference.dispose();
  });
});
