/**
 * Checks for 10-preference-losses: the log-probability of each row's answer against gpt-course's
 * `targetLogProbabilities(...).sum(1)` on random logits with random ignored positions; the DPO loss against
 * gpt-course's `dpoLoss` on random log-probabilities, on margins of ±200 (it must stay finite) and through its
 * gradient (which must raise the chosen answer and lower the rejected one); group advantages against gpt-course's
 * `groupAdvantages`, all-alike groups included. Common mistakes (softmax for log-softmax, ignored positions counted,
 * a mean for a sum, targets shifted twice, chosen and rejected swapped, β or the reference forgotten, ln σ computed
 * naively, one normalisation for the whole batch, G − 1, no ε) are recognised and named.
 */
import {
  dpoLoss as courseDpoLoss,
  groupAdvantages as courseGroupAdvantages,
  IGNORE_INDEX,
  type Random,
  targetLogProbabilities,
  tf,
} from "gpt-course";
import {
  allClose,
  type Conforms,
  defineExercise,
  expectClose,
  expectCloseArrays,
  expectShape,
  expectTensor,
  expectThrows,
  fail,
  isTodo,
  randomChoice,
  randomFloat,
  randomInt,
  randomTensor,
} from "../harness/check.js";

type Exports = typeof import("./solution.js");
export type StarterConforms = Conforms<typeof import("./starter.js"), Exports>;

/** The first variant that differs from the right answer but matches the learner's: the mistake they made. */
function namedMistake(
  result: tf.Tensor,
  expected: tf.Tensor,
  variants: Array<[tf.Tensor, string]>,
): string | undefined {
  if (allClose(result, expected)) return undefined;
  return variants.find(([variant]) => !allClose(variant, expected) && allClose(result, variant))?.[1];
}

// ---------------------------------------------------------------------------------------------------------
// sequenceLogProbabilities
// ---------------------------------------------------------------------------------------------------------

/**
 * Random logits (B, T, V) and targets (B, T) with about 40% of the positions ignored; sometimes a whole row is
 * ignored (its log-probability is 0), but never every row.
 */
function randomSequenceInputs(random: Random): { logits: tf.Tensor3D; targets: tf.Tensor2D; graded: number } {
  const [B, T, V] = [randomInt(random, 2, 4), randomInt(random, 4, 9), randomInt(random, 4, 16)];
  const emptyRow = random.next() < 0.4 ? random.int(B) : -1;
  const ids = Array.from({ length: B * T }, (_, i) => {
    const row = Math.floor(i / T);
    const ignored = row === emptyRow || (i % T !== 0 && random.next() < 0.4); // position 0 graded in other rows
    return ignored ? IGNORE_INDEX : random.int(V);
  });
  return {
    logits: randomTensor(random, [B, T, V], 2) as tf.Tensor3D,
    targets: tf.tensor2d(ids, [B, T], "int32"),
    graded: ids.filter((id) => id !== IGNORE_INDEX).length,
  };
}

/** Per position: ln π(target) (or π(target) when `probabilities`), and the 0/1 mask of graded positions. */
function pickTargets(
  logits: tf.Tensor3D,
  targets: tf.Tensor2D,
  probabilities = false,
): { picked: tf.Tensor2D; graded: tf.Tensor2D } {
  const graded = targets.notEqual(IGNORE_INDEX);
  const safeTargets = tf.where(graded, targets, tf.zerosLike(targets)) as tf.Tensor2D;
  const scores = probabilities ? tf.softmax(logits) : tf.logSoftmax(logits);
  const picked = scores.mul(tf.oneHot(safeTargets, logits.shape[2])).sum(-1) as tf.Tensor2D;
  return { picked, graded: graded.toFloat() as tf.Tensor2D };
}

/** What each typical mistake of sequenceLogProbabilities gives, with the hint that names it. */
function sequenceMistakes(logits: tf.Tensor3D, targets: tf.Tensor2D): Array<[tf.Tensor, string]> {
  const [B, T, V] = logits.shape;
  const { picked, graded } = pickTargets(logits, targets);
  const sum = picked.mul(graded).sum(1);
  const shifted = (logitsFrom: number, targetsFrom: number): tf.Tensor => {
    const { picked: p, graded: g } = pickTargets(
      logits.slice([0, logitsFrom, 0], [B, T - 1, V]),
      targets.slice([0, targetsFrom], [B, T - 1]),
    );
    return p.mul(g).sum(1);
  };
  const probabilities = pickTargets(logits, targets, true);
  const shiftedHint =
    "The targets were shifted once more: they are already the next tokens (targets[b][t] is the token that follows " +
    "input t, and logits[b][t] scores it), so pair logits[:, t] with targets[:, t].";
  return [
    [
      probabilities.picked.mul(probabilities.graded).sum(1),
      "You summed probabilities π(target), not log-probabilities: use tf.logSoftmax (the log of a product is the sum " +
        "of the logs).",
    ],
    [
      picked.sum(1),
      "The ignored positions were counted: with their targets replaced by 0 for tf.oneHot, each adds ln π(token 0). " +
        "Multiply by the graded mask (targets ≠ IGNORE_INDEX, as float) before summing.",
    ],
    [
      sum.div(graded.sum(1).maximum(1)),
      "You averaged over the graded tokens: ln π(answer) is the sum of its tokens' log-probabilities (the log of a " +
        "product), not their mean.",
    ],
    [sum.div(T), "You averaged over the T positions: sum them instead (.sum(1), not .mean(1))."],
    [shifted(0, 1), shiftedHint],
    [shifted(1, 0), shiftedHint],
  ];
}

// ---------------------------------------------------------------------------------------------------------
// dpoLoss
// ---------------------------------------------------------------------------------------------------------

interface PairLogProbabilities {
  policyChosen: tf.Tensor1D;
  policyRejected: tf.Tensor1D;
  referenceChosen: tf.Tensor1D;
  referenceRejected: tf.Tensor1D;
  beta: number;
}

/**
 * Summed log-probabilities of P pairs: the reference's between −40 and −5, the policy's within ±6 of them, so the
 * margins β[(π_w − ref_w) − (π_l − ref_l)] mix signs and sizes; β between 0.1 and 1.
 */
function randomPairs(random: Random): PairLogProbabilities {
  const P = randomInt(random, 3, 8);
  const referenceChosen = Array.from({ length: P }, () => -randomFloat(random, 5, 40));
  const referenceRejected = Array.from({ length: P }, () => -randomFloat(random, 5, 40));
  const policyChosen = referenceChosen.map((r) => r + randomFloat(random, -6, 6));
  const policyRejected = referenceRejected.map((r) => r + randomFloat(random, -6, 6));
  return {
    policyChosen: tf.tensor1d(policyChosen),
    policyRejected: tf.tensor1d(policyRejected),
    referenceChosen: tf.tensor1d(referenceChosen),
    referenceRejected: tf.tensor1d(referenceRejected),
    beta: randomFloat(random, 0.1, 1),
  };
}

/** gpt-course's DPO loss on `pairs`. */
const expectedDpo = ({
  policyChosen,
  policyRejected,
  referenceChosen,
  referenceRejected,
  beta,
}: PairLogProbabilities) => courseDpoLoss(policyChosen, policyRejected, referenceChosen, referenceRejected, beta);

/** What each typical mistake of dpoLoss gives, with the hint that names it. */
function dpoMistakes(pairs: PairLogProbabilities): Array<[tf.Tensor, string]> {
  const { policyChosen, policyRejected, referenceChosen, referenceRejected, beta } = pairs;
  const zeros = tf.zerosLike(referenceChosen);
  const P = policyChosen.size;
  const loss = expectedDpo(pairs);
  return [
    [
      courseDpoLoss(policyRejected, policyChosen, referenceRejected, referenceChosen, beta),
      "Chosen and rejected are swapped (the margin has the wrong sign): the margin is (chosen's log-ratio) − " +
        "(rejected's log-ratio), so that minimising the loss makes the chosen answer more likely.",
    ],
    [
      courseDpoLoss(policyChosen, policyRejected, referenceChosen, referenceRejected, 1),
      "β is missing: multiply the margin by beta before the softplus.",
    ],
    [
      courseDpoLoss(policyChosen, policyRejected, referenceChosen, referenceRejected, 1 / beta),
      "The margin is multiplied by β, not divided by it.",
    ],
    [
      courseDpoLoss(policyChosen, policyRejected, zeros, zeros, beta),
      "The reference model is ignored: each answer's implicit reward is its log-ratio ln π − ln π_ref, so subtract " +
        "referenceChosen from policyChosen and referenceRejected from policyRejected.",
    ],
    [
      courseDpoLoss(policyChosen, policyRejected, referenceChosen.neg(), referenceRejected.neg(), beta),
      "The reference's log-probabilities are added: subtract them (ln π − ln π_ref is the log of the ratio).",
    ],
    [loss.mul(P), "You summed over the pairs: average them (.mean()), so the loss does not grow with the batch."],
    [
      loss.neg(),
      "The sign is wrong: the loss is −ln σ(m) = softplus(−m) ≥ 0, the negative log-likelihood of the preferences.",
    ],
  ];
}

/** Calls the learner's dpoLoss on `pairs` and fails unless the result is a scalar tensor. */
function learnerDpo(dpoLoss: Exports["dpoLoss"], pairs: PairLogProbabilities, what: string): tf.Tensor {
  const { policyChosen, policyRejected, referenceChosen, referenceRejected, beta } = pairs;
  const loss = expectTensor(dpoLoss(policyChosen, policyRejected, referenceChosen, referenceRejected, beta), what);
  expectShape(
    loss,
    [],
    what,
    loss.size === policyChosen.size
      ? "One loss per pair came back: average them (.mean()) into a single scalar."
      : "The loss is a scalar: the mean over the pairs of softplus(−margin).",
  );
  return loss;
}

// ---------------------------------------------------------------------------------------------------------
// groupAdvantages
// ---------------------------------------------------------------------------------------------------------

type AdvantageMistake = "whole batch" | "sample std" | "no epsilon" | "no std" | "variance" | "not centred";

/** Group advantages computed here (independently of gpt-course), or with one typical mistake. */
function advantagesWith(rewards: readonly number[], groupSize: number, mistake?: AdvantageMistake): number[] {
  const size = mistake === "whole batch" ? rewards.length : groupSize;
  const result: number[] = [];
  for (let start = 0; start < rewards.length; start += size) {
    const group = rewards.slice(start, start + size);
    const mean = group.reduce((a, b) => a + b, 0) / size;
    const squares = group.reduce((a, r) => a + (r - mean) ** 2, 0);
    const variance = squares / (mistake === "sample std" ? size - 1 : size);
    const scale =
      mistake === "no std"
        ? 1
        : mistake === "variance"
          ? variance + 1e-6
          : mistake === "no epsilon"
            ? Math.sqrt(variance)
            : Math.sqrt(variance) + 1e-6;
    for (const r of group) result.push((mistake === "not centred" ? r : r - mean) / scale);
  }
  return result;
}

const ADVANTAGE_MISTAKES: Array<[AdvantageMistake, string]> = [
  [
    "whole batch",
    "You normalised over the whole batch: each answer is compared with the other answers to *its own* question " +
      "(its group of groupSize consecutive rewards), so an easy question does not make every answer to a hard one " +
      "look bad.",
  ],
  [
    "sample std",
    "The std divides by G − 1 (the sample std, PyTorch's default): the course divides by G, √(Σ(r − mean)²/G).",
  ],
  [
    "no epsilon",
    "Add ε = 1e-6 to the std: (r − mean) / (std + 1e-6). Without it a group whose answers all scored alike gives " +
      "0 / 0 = NaN.",
  ],
  ["no std", "The rewards are centred but not scaled: divide by the group's std (+ 1e-6)."],
  ["variance", "You divided by the variance: divide by the standard deviation, its square root (+ 1e-6)."],
  ["not centred", "Subtract the group's mean first: the advantage is how much better than its group an answer did."],
];

/** The hint of the typical mistake whose advantages the learner's match, if any. */
function advantageMistake(
  result: unknown,
  rewards: readonly number[],
  groupSize: number,
  expected: readonly number[],
): string | undefined {
  if (!Array.isArray(result)) return undefined;
  const close = (a: readonly number[], b: readonly number[]) =>
    a.length === b.length && a.every((x, i) => Math.abs(x - (b[i] as number)) <= 1e-9 + 1e-9 * Math.abs(x));
  if (close(result, expected)) return undefined;
  return ADVANTAGE_MISTAKES.find(([mistake]) => {
    const variant = advantagesWith(rewards, groupSize, mistake);
    return !close(variant, expected) && close(result, variant);
  })?.[1];
}

const describeRewards = (rewards: readonly number[]): string =>
  `[${rewards.map((r) => (Number.isInteger(r) ? String(r) : r.toFixed(3))).join(", ")}]`;

/**
 * Rewards for `groups` groups of `groupSize`: either 0/1 (a right or wrong answer, as the course's tasks score)
 * or numbers spread between −2 and 3. No group is all alike (one reward is changed if it would be).
 */
function randomRewards(random: Random, groups: number, groupSize: number, binary: boolean): number[] {
  const rewards: number[] = [];
  for (let g = 0; g < groups; g++) {
    const group = Array.from({ length: groupSize }, () =>
      binary ? (random.next() < 0.5 ? 1 : 0) : randomFloat(random, -2, 3),
    );
    if (group.every((r) => r === group[0])) group[random.int(groupSize)] = 1 - (group[0] as number); // not all alike
    rewards.push(...group);
  }
  return rewards;
}

export default defineExercise<Exports>({
  title: "The losses of preference tuning",
  teaches:
    "the log-probability of an answer (a masked sum of log-softmax), the DPO loss as a stable softplus of the Bradley-Terry margin, group-relative advantages",
  checks: [
    {
      name: "sequenceLogProbabilities sums ln π(target) over each row's graded positions (gpt-course's targetLogProbabilities)",
      hint:
        "graded = targets ≠ IGNORE_INDEX; targets with 0 where ignored (for tf.oneHot); tf.logSoftmax(logits) · " +
        "tf.oneHot(targets, V), summed over V; times graded (as float); summed over T → (B).",
      run({ sequenceLogProbabilities }, random) {
        for (let trial = 0; trial < 3; trial++) {
          const { logits, targets, graded } = randomSequenceInputs(random);
          const [B, T, V] = logits.shape;
          const expected = targetLogProbabilities(logits, targets).sum(1);
          const what = `sequenceLogProbabilities(logits [${B}, ${T}, ${V}], targets [${B}, ${T}] with ${graded} graded)`;
          const result = expectTensor(sequenceLogProbabilities(logits, targets), what);
          expectShape(
            result,
            [B],
            what,
            result.rank === 2
              ? "One number per row: sum the graded positions' log-probabilities over T (axis 1)."
              : undefined,
          );
          const hint = namedMistake(result, expected, sequenceMistakes(logits, targets));
          expectClose(result, expected, what, { hint });
        }
      },
    },
    {
      name: "dpoLoss is −mean ln σ(β[(π_w − ref_w) − (π_l − ref_l)]) (gpt-course's dpoLoss)",
      hint:
        "margin = β · ((policyChosen − referenceChosen) − (policyRejected − referenceRejected)), one per pair; " +
        "loss = tf.softplus(margin.neg()).mean(), since −ln σ(m) = ln(1 + e^(−m)) = softplus(−m).",
      run({ dpoLoss }, random) {
        for (let trial = 0; trial < 3; trial++) {
          const pairs = randomPairs(random);
          const what = `dpoLoss of ${pairs.policyChosen.size} random pairs, β = ${pairs.beta.toFixed(3)}`;
          const loss = learnerDpo(dpoLoss, pairs, what);
          const expected = expectedDpo(pairs);
          expectClose(loss, expected, what, { hint: namedMistake(loss, expected, dpoMistakes(pairs)) });
        }
        // At the start of training the policy is the reference: every margin is 0 and the loss is ln 2.
        const pairs = randomPairs(random);
        const start = { ...pairs, policyChosen: pairs.referenceChosen, policyRejected: pairs.referenceRejected };
        expectClose(
          learnerDpo(dpoLoss, start, "dpoLoss when the policy is the reference"),
          tf.scalar(Math.LN2),
          "dpoLoss when the policy is the reference",
          {
            hint: "With the policy equal to the reference every margin is 0, and −ln σ(0) = ln 2.",
          },
        );
      },
    },
    {
      name: "dpoLoss stays finite and right for margins of ±200",
      hint:
        "Compute −ln σ(m) as tf.softplus(m.neg()), which never overflows: tf.log(tf.sigmoid(m)) takes ln 0 = −Infinity " +
        "once σ(m) rounds to 0 in float32, and ln(1 + e^(−m)) overflows once e^(−m) does (margins below about −90).",
      run({ dpoLoss }, random) {
        const P = randomInt(random, 4, 8);
        const beta = randomFloat(random, 0.1, 1);
        // β·margin per pair: ±200 first, then a mix of large and ordinary margins.
        const margins = [
          -200,
          200,
          ...Array.from({ length: P - 2 }, () => randomChoice(random, [-150, 150, 0]) + randomFloat(random, -5, 5)),
        ];
        const referenceChosen = margins.map(() => -randomFloat(random, 5, 40));
        const referenceRejected = margins.map(() => -randomFloat(random, 5, 40));
        const policyRejected = margins.map(() => -randomFloat(random, 5, 40));
        // Solve m = β[(π_w − ref_w) − (π_l − ref_l)] for π_w.
        const policyChosen = margins.map(
          (m, i) =>
            (referenceChosen[i] as number) +
            (policyRejected[i] as number) -
            (referenceRejected[i] as number) +
            m / beta,
        );
        const pairs: PairLogProbabilities = {
          policyChosen: tf.tensor1d(policyChosen),
          policyRejected: tf.tensor1d(policyRejected),
          referenceChosen: tf.tensor1d(referenceChosen),
          referenceRejected: tf.tensor1d(referenceRejected),
          beta,
        };
        const what = `dpoLoss with β·margins [${margins.map((m) => m.toFixed(1)).join(", ")}]`;
        const loss = learnerDpo(dpoLoss, pairs, what);
        const value = loss.dataSync()[0] as number;
        if (!Number.isFinite(value)) {
          fail(
            `${what} is ${value}.`,
            "ln σ(m) was computed naively: σ(−200) ≈ 1e-87 is 0 in float32 and ln 0 = −Infinity (and e^200, in " +
              "ln(1 + e^(−m)), is Infinity). Use tf.softplus(m.neg()), which computes ln(1 + e^(−m)) without overflow.",
          );
        }
        const expected = expectedDpo(pairs);
        expectClose(loss, expected, what, { hint: namedMistake(loss, expected, dpoMistakes(pairs)) });
      },
    },
    {
      name: "dpoLoss's gradient raises the chosen answer's log-probability and lowers the rejected one's",
      hint:
        "Compute the loss with tensor operations only (no dataSync or arraySync inside), so that tf.grads can follow " +
        "it. Use tf.softplus(margin.neg()): in this course tf.logSigmoid's gradient misbehaves with the early release " +
        "of gradient memory (lib/backend/gradient-memory.ts).",
      run({ dpoLoss }, random) {
        const pairs = randomPairs(random);
        const { policyChosen, policyRejected, referenceChosen, referenceRejected, beta } = pairs;
        const P = policyChosen.size;
        const gradientsOf = (loss: Exports["dpoLoss"]) =>
          tf.grads((chosen: tf.Tensor, rejected: tf.Tensor) =>
            loss(chosen as tf.Tensor1D, rejected as tf.Tensor1D, referenceChosen, referenceRejected, beta),
          )([policyChosen, policyRejected]);
        let learner: tf.Tensor[];
        try {
          learner = gradientsOf(dpoLoss);
        } catch (error) {
          if (isTodo(error)) throw error;
          return fail(`tf.grads could not differentiate your dpoLoss: ${(error as Error).message ?? error}`);
        }
        const [expectedChosen, expectedRejected] = gradientsOf(courseDpoLoss) as [tf.Tensor, tf.Tensor];
        const chosen = expectTensor(learner[0], "∂loss/∂policyChosen");
        const rejected = expectTensor(learner[1], "∂loss/∂policyRejected");
        expectShape(chosen, [P], "∂loss/∂policyChosen");
        expectShape(rejected, [P], "∂loss/∂policyRejected");
        const swapHint =
          "A gradient step subtracts the gradient, so ∂loss/∂ln π(y_w) must be negative (the chosen answer becomes " +
          "more likely) and ∂loss/∂ln π(y_l) positive. Yours are the other way round: chosen and rejected are swapped, " +
          "or the loss's sign is.";
        const chosenValues = Array.from(chosen.dataSync());
        const rejectedValues = Array.from(rejected.dataSync());
        const up = chosenValues.findIndex((g) => !(g < 0));
        if (up >= 0) {
          fail(
            `∂loss/∂policyChosen of pair ${up} is ${chosenValues[up]}: a gradient step would not make the chosen answer more likely.`,
            chosenValues.every((g) => g > 0) ? swapHint : undefined,
          );
        }
        const down = rejectedValues.findIndex((g) => !(g > 0));
        if (down >= 0) {
          fail(
            `∂loss/∂policyRejected of pair ${down} is ${rejectedValues[down]}: a gradient step would not make the rejected answer less likely.`,
            rejectedValues.every((g) => g < 0) ? swapHint : undefined,
          );
        }
        const sizeHint =
          "Each pair's push is (β/P)·σ(−m): strong for a pair the policy still ranks the wrong way, weak for one it " +
          "already ranks right. This gradient follows from the loss: if dpoLoss fails a check above, fix that first.";
        expectClose(chosen, expectedChosen, "∂loss/∂policyChosen", { atol: 1e-6, rtol: 1e-3, hint: sizeHint });
        expectClose(rejected, expectedRejected, "∂loss/∂policyRejected", { atol: 1e-6, rtol: 1e-3, hint: sizeHint });
      },
    },
    {
      name: "groupAdvantages normalises each reward within its own group (gpt-course's groupAdvantages)",
      hint:
        "For each group of groupSize consecutive rewards: mean, std = √(Σ(r − mean)²/G), and (r − mean) / (std + 1e-6) " +
        "for each of its rewards, in order.",
      run({ groupAdvantages }, random) {
        for (const binary of [true, false, random.next() < 0.5]) {
          const groupSize = randomInt(random, 2, 8);
          const rewards = randomRewards(random, randomInt(random, 2, 5), groupSize, binary);
          const expected = courseGroupAdvantages(rewards, groupSize);
          const result = groupAdvantages([...rewards], groupSize);
          expectCloseArrays(result, expected, `groupAdvantages(${describeRewards(rewards)}, ${groupSize})`, {
            atol: 1e-7,
            rtol: 1e-7,
            hint: advantageMistake(result, rewards, groupSize, expected),
          });
        }
      },
    },
    {
      name: "groupAdvantages gives 0 (not NaN) to a group whose answers all scored alike, and refuses partial groups",
      hint:
        "With ε: (r − mean) / (std + 1e-6) is 0 / 1e-6 = 0 when every reward of the group is the same. Throw an " +
        "Error when rewards.length is not a multiple of groupSize. If the check above fails, fix that first.",
      run({ groupAdvantages }, random) {
        const groupSize = randomInt(random, 2, 6);
        const groups = randomInt(random, 3, 5);
        const alike = random.int(groups); // at least this group scores alike
        const rewards: number[] = [];
        for (let g = 0; g < groups; g++) {
          const group = randomRewards(random, 1, groupSize, random.next() < 0.5);
          if (g === alike || random.next() < 0.3) group.fill(randomChoice(random, [0, 1, 0.5, -1, 2]));
          rewards.push(...group);
        }
        const what = `groupAdvantages(${describeRewards(rewards)}, ${groupSize})`;
        const result = groupAdvantages([...rewards], groupSize);
        if (Array.isArray(result) && result.some((a) => !Number.isFinite(a))) {
          fail(
            `${what} contains ${describeRewards(result.filter((a) => !Number.isFinite(a)))}.`,
            "A group whose rewards are all the same has std 0, and (r − mean)/std = 0/0 = NaN: divide by std + 1e-6.",
          );
        }
        const expected = courseGroupAdvantages(rewards, groupSize);
        expectCloseArrays(result, expected, what, {
          atol: 1e-7,
          rtol: 1e-7,
          hint: advantageMistake(result, rewards, groupSize, expected),
        });
        const partial = rewards.slice(0, groupSize * (groups - 1) + randomInt(random, 1, groupSize - 1));
        expectThrows(
          () => groupAdvantages(partial, groupSize),
          `groupAdvantages(${partial.length} rewards, ${groupSize})`,
          `${partial.length} rewards are not whole groups of ${groupSize}: throw an Error rather than normalise a partial group.`,
        );
      },
    },
  ],
});
