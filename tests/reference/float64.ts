/**
 * An independent float64 reference for the course library: plain TypeScript, explicit loops, nested
 * number arrays, and NO TensorFlow.js. Tests compare lib's float32 TensorFlow.js results against it.
 *
 * Conventions
 *   Matrix       number[][], row-major: m[row][col].
 *   Params       parameters by their dotted names (as `Module.namedParameters()` names them) with their
 *                shape and row-major data. The reference decides on its own how a name maps to the maths
 *                (e.g. how the fused c_attn weight [C, 3C] splits into q, k, v and into heads), so a wrong
 *                mapping in lib shows up as a mismatch.
 *   Masks        `allowed(i, j)` is true where query i may attend to key j. A disallowed score contributes
 *                exactly 0 to the softmax. A row where nothing is allowed becomes uniform over all keys
 *                (lib adds a finite −1e9 to masked scores, so such a row stays finite and uniform).
 */

export type Vector = number[];
export type Matrix = number[][];

export interface ParamTensor {
  shape: number[];
  data: ArrayLike<number>;
}
export type Params = Record<string, ParamTensor>;

// ---------------------------------------------------------------------------------------------------------
// Linear algebra
// ---------------------------------------------------------------------------------------------------------

export function zeros(rows: number, cols: number): Matrix {
  const m: Matrix = [];
  for (let i = 0; i < rows; i++) m.push(new Array<number>(cols).fill(0));
  return m;
}

export function matmul(a: Matrix, b: Matrix): Matrix {
  const n = a.length;
  const inner = b.length;
  const m = inner === 0 ? 0 : b[0].length;
  for (const row of a) if (row.length !== inner) throw new Error(`matmul: inner sizes ${row.length} vs ${inner}`);
  const out = zeros(n, m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let p = 0; p < inner; p++) s += a[i][p] * b[p][j];
      out[i][j] = s;
    }
  }
  return out;
}

export function transpose(a: Matrix): Matrix {
  const rows = a.length;
  const cols = rows === 0 ? 0 : a[0].length;
  const out = zeros(cols, rows);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j][i] = a[i][j];
  return out;
}

export function add(a: Matrix, b: Matrix): Matrix {
  return a.map((row, i) => row.map((value, j) => value + b[i][j]));
}

/** Adds the vector v to every row of a. */
export function addRow(a: Matrix, v: Vector): Matrix {
  return a.map((row) => {
    if (row.length !== v.length) throw new Error(`addRow: ${row.length} vs ${v.length}`);
    return row.map((value, j) => value + v[j]);
  });
}

export function scale(a: Matrix, s: number): Matrix {
  return a.map((row) => row.map((value) => value * s));
}

export function mapMatrix(a: Matrix, f: (x: number) => number): Matrix {
  return a.map((row) => row.map(f));
}

/** Columns [from, to) of a. */
export function columns(a: Matrix, from: number, to: number): Matrix {
  return a.map((row) => row.slice(from, to));
}

/** Concatenates matrices with the same number of rows side by side. */
export function concatColumns(parts: Matrix[]): Matrix {
  return parts[0].map((_, i) => parts.flatMap((part) => part[i]));
}

// ---------------------------------------------------------------------------------------------------------
// Softmax, layer norm, activations
// ---------------------------------------------------------------------------------------------------------

/** Numerically stable softmax of one row; entries that are −∞ get exactly 0. All −∞: uniform. */
export function softmax(row: Vector): Vector {
  let max = -Infinity;
  for (const value of row) if (value > max) max = value;
  if (max === -Infinity) return row.map(() => 1 / row.length);
  const exps = row.map((value) => (value === -Infinity ? 0 : Math.exp(value - max)));
  let sum = 0;
  for (const e of exps) sum += e;
  return exps.map((e) => e / sum);
}

export function softmaxRows(a: Matrix): Matrix {
  return a.map(softmax);
}

export function logSumExp(row: Vector): number {
  let max = -Infinity;
  for (const value of row) if (value > max) max = value;
  let sum = 0;
  for (const value of row) sum += Math.exp(value - max);
  return max + Math.log(sum);
}

/** y = (x − mean) / √(var + eps) · γ + β per row, with the biased variance (divide by C, not C − 1). */
export function layerNorm(x: Matrix, gamma: Vector, beta: Vector, eps: number): Matrix {
  return x.map((row) => {
    const C = row.length;
    let mean = 0;
    for (const value of row) mean += value;
    mean /= C;
    let variance = 0;
    for (const value of row) variance += (value - mean) * (value - mean);
    variance /= C;
    const inv = 1 / Math.sqrt(variance + eps);
    return row.map((value, j) => (value - mean) * inv * gamma[j] + beta[j]);
  });
}

/**
 * erf(x) to ~1e-15, from the everywhere-convergent series with positive terms only (no cancellation):
 *   erf(x) = 2/√π · e^(−x²) · Σ_{n≥0} x (2x²)^n / (1·3·5···(2n+1))
 * For |x| > 6, |1 − |erf(x)|| < 3e-17, so ±1 is exact in float64.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === 0) return 0;
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  if (a > 6) return sign;
  const twoA2 = 2 * a * a;
  let term = a; // n = 0: x / 1
  let sum = term;
  for (let n = 1; n < 500; n++) {
    term *= twoA2 / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (sign * 2 * Math.exp(-a * a) * sum) / Math.sqrt(Math.PI);
}

/** Exact GELU: x · Φ(x) = ½ x (1 + erf(x / √2)). */
export function geluExact(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** GPT-2's tanh approximation: ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

export type ActivationName = "gelu" | "gelu_tanh";

export function activation(name: ActivationName): (x: number) => number {
  if (name === "gelu") return geluExact;
  if (name === "gelu_tanh") return geluTanh;
  throw new Error(`reference: unknown activation ${String(name)}`);
}

// ---------------------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------------------

export type Allowed = (query: number, key: number) => boolean;

/** Causal rule with cached keys: the Tq queries are the last Tq of Tk positions, so j ≤ i + (Tk − Tq). */
export function causalAllowed(queryLength: number, keyLength: number): Allowed {
  const offset = keyLength - queryLength;
  return (i, j) => j <= i + offset;
}

/** Combines rules: allowed only where every given rule allows. */
export function allOf(...rules: Array<Allowed | undefined>): Allowed | undefined {
  const present = rules.filter((rule): rule is Allowed => rule !== undefined);
  if (present.length === 0) return undefined;
  return (i, j) => present.every((rule) => rule(i, j));
}

/** Padding rule from a per-key 1/0 (or boolean) vector. */
export function keyPaddingAllowed(keyMask: ArrayLike<number | boolean>): Allowed {
  return (_i, j) => Boolean(keyMask[j]);
}

/**
 * softmax(q kᵀ / √d_k, masked) v for one head: q (Tq, d_k), k (Tk, d_k), v (Tk, d_v).
 * Returns the output (Tq, d_v) and the weights (Tq, Tk).
 */
export function attention(
  q: Matrix,
  k: Matrix,
  v: Matrix,
  options: { causal?: boolean; allowed?: Allowed } = {},
): { output: Matrix; weights: Matrix } {
  const Tq = q.length;
  const Tk = k.length;
  const dk = q[0].length;
  const rule = allOf(options.allowed, options.causal ? causalAllowed(Tq, Tk) : undefined);
  const weights: Matrix = [];
  for (let i = 0; i < Tq; i++) {
    const scores: Vector = [];
    for (let j = 0; j < Tk; j++) {
      if (rule && !rule(i, j)) {
        scores.push(-Infinity);
        continue;
      }
      let s = 0;
      for (let p = 0; p < dk; p++) s += q[i][p] * k[j][p];
      scores.push(s / Math.sqrt(dk));
    }
    weights.push(softmax(scores));
  }
  return { output: matmul(weights, v), weights };
}

/**
 * The gradients of attention, written out: with S = q kᵀ/√d_k (masked), P = softmax(S) by rows, O = P v and the
 * output's gradient dO, dV = Pᵀ dO, dP = dO vᵀ, dS_ij = P_ij (dP_ij − Σ_l P_il dP_il), dq = dS k/√d_k, dk = dSᵀ q/√d_k.
 */
export function attentionGradients(
  q: Matrix,
  k: Matrix,
  v: Matrix,
  dOutput: Matrix,
  options: { causal?: boolean; allowed?: Allowed } = {},
): { dq: Matrix; dk: Matrix; dv: Matrix } {
  const scaleBy = 1 / Math.sqrt(q[0].length);
  const P = attention(q, k, v, options).weights;
  const dP = matmul(dOutput, transpose(v));
  const dS = P.map((row, i) => {
    const dot = row.reduce((sum, p, l) => sum + p * dP[i][l], 0);
    return row.map((p, j) => p * (dP[i][j] - dot));
  });
  return {
    dq: scale(matmul(dS, k), scaleBy),
    dk: scale(matmul(transpose(dS), q), scaleBy),
    dv: matmul(transpose(P), dOutput),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Parameters by name
// ---------------------------------------------------------------------------------------------------------

/** Dotted name of a child: join("h.0", "ln_1") = "h.0.ln_1"; an empty prefix is the module itself. */
export function join(prefix: string, name: string): string {
  return prefix === "" ? name : `${prefix}.${name}`;
}

export function hasParam(params: Params, name: string): boolean {
  return Object.hasOwn(params, name);
}

function getParam(params: Params, name: string): ParamTensor {
  if (!hasParam(params, name)) {
    throw new Error(`reference: no parameter "${name}" (have: ${Object.keys(params).join(", ")})`);
  }
  return params[name];
}

export function matrixParam(params: Params, name: string): Matrix {
  const p = getParam(params, name);
  if (p.shape.length !== 2) throw new Error(`reference: "${name}" should be 2-D, has shape [${p.shape}]`);
  const [rows, cols] = p.shape;
  const out = zeros(rows, cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i][j] = p.data[i * cols + j];
  return out;
}

export function vectorParam(params: Params, name: string): Vector {
  const p = getParam(params, name);
  if (p.shape.length !== 1) throw new Error(`reference: "${name}" should be 1-D, has shape [${p.shape}]`);
  return Array.from(p.data);
}

/** x · W (+ b when the parameter `<prefix>.bias` exists); W is stored (in, out). */
export function linear(x: Matrix, params: Params, prefix: string): Matrix {
  const y = matmul(x, matrixParam(params, join(prefix, "weight")));
  return hasParam(params, join(prefix, "bias")) ? addRow(y, vectorParam(params, join(prefix, "bias"))) : y;
}

export function layerNormParams(x: Matrix, params: Params, prefix: string, eps: number): Matrix {
  return layerNorm(x, vectorParam(params, join(prefix, "weight")), vectorParam(params, join(prefix, "bias")), eps);
}

// ---------------------------------------------------------------------------------------------------------
// Multi-head attention, MLP, blocks (one sequence at a time: x is (T, C))
// ---------------------------------------------------------------------------------------------------------

export interface AttentionResult {
  output: Matrix; // (Tq, C)
  weights: Matrix[]; // one (Tq, Tk) matrix per head
}

/** Runs nh heads: head h uses channels h·hs .. (h+1)·hs of q, k and v; outputs are concatenated, then c_proj. */
function multiHead(
  q: Matrix,
  k: Matrix,
  v: Matrix,
  numHeads: number,
  params: Params,
  prefix: string,
  options: { causal?: boolean; allowed?: Allowed },
): AttentionResult {
  const C = q[0].length;
  if (C % numHeads !== 0) throw new Error(`reference: C=${C} not divisible by ${numHeads}`);
  const hs = C / numHeads;
  const outputs: Matrix[] = [];
  const weights: Matrix[] = [];
  for (let h = 0; h < numHeads; h++) {
    const head = attention(
      columns(q, h * hs, (h + 1) * hs),
      columns(k, h * hs, (h + 1) * hs),
      columns(v, h * hs, (h + 1) * hs),
      options,
    );
    outputs.push(head.output);
    weights.push(head.weights);
  }
  return { output: linear(concatColumns(outputs), params, join(prefix, "c_proj")), weights };
}

/**
 * Self-attention with the fused projection `<prefix>.c_attn` (C → 3C): q, k, v are the three C-wide column
 * chunks of x·W + b. `past` (keys and values of earlier positions, each (Tpast, C) before the head split)
 * are prepended to this call's keys and values, like a KV cache.
 */
export function selfAttention(
  x: Matrix,
  params: Params,
  prefix: string,
  options: { numHeads: number; causal: boolean; allowed?: Allowed; past?: { keys: Matrix; values: Matrix } },
): AttentionResult & { keys: Matrix; values: Matrix } {
  const C = x[0].length;
  const qkv = linear(x, params, join(prefix, "c_attn"));
  if (qkv[0].length !== 3 * C) throw new Error(`reference: c_attn gives ${qkv[0].length} columns, expected ${3 * C}`);
  const q = columns(qkv, 0, C);
  let k = columns(qkv, C, 2 * C);
  let v = columns(qkv, 2 * C, 3 * C);
  if (options.past) {
    k = [...options.past.keys, ...k];
    v = [...options.past.values, ...v];
  }
  const result = multiHead(q, k, v, options.numHeads, params, prefix, options);
  return { ...result, keys: k, values: v };
}

/** Cross-attention: q = x · q_attn (C → C); k, v = the two C-wide chunks of context · c_attn (C → 2C). */
export function crossAttention(
  x: Matrix,
  context: Matrix,
  params: Params,
  prefix: string,
  options: { numHeads: number; allowed?: Allowed },
): AttentionResult {
  const C = x[0].length;
  const q = linear(x, params, join(prefix, "q_attn"));
  const kv = linear(context, params, join(prefix, "c_attn"));
  if (kv[0].length !== 2 * C)
    throw new Error(`reference: cross c_attn gives ${kv[0].length} columns, expected ${2 * C}`);
  return multiHead(q, columns(kv, 0, C), columns(kv, C, 2 * C), options.numHeads, params, prefix, {
    allowed: options.allowed,
  });
}

/** c_proj(act(c_fc(x))), c_fc: C → 4C. */
export function mlp(x: Matrix, params: Params, prefix: string, act: ActivationName): Matrix {
  return linear(mapMatrix(linear(x, params, join(prefix, "c_fc")), activation(act)), params, join(prefix, "c_proj"));
}

export interface BlockOptions {
  numHeads: number;
  eps: number;
  activation: ActivationName;
  preNorm: boolean;
  causal: boolean;
  /** Extra rule for self-attention (e.g. source padding in an encoder). */
  selfAllowed?: Allowed;
  /** Encoder output for the cross-attention sub-layer (ln_cross_attn, crossattention). */
  context?: Matrix;
  crossAllowed?: Allowed;
  past?: { keys: Matrix; values: Matrix };
}

export interface BlockResult {
  output: Matrix;
  selfWeights: Matrix[];
  crossWeights?: Matrix[];
  keys: Matrix;
  values: Matrix;
}

/**
 * Pre-LN:  x = x + attn(ln_1(x)); [x = x + cross(ln_cross_attn(x), context)]; x = x + mlp(ln_2(x))
 * Post-LN: x = ln_1(x + attn(x)); [x = ln_cross_attn(x + cross(x, context))]; x = ln_2(x + mlp(x))
 */
export function block(x: Matrix, params: Params, prefix: string, o: BlockOptions): BlockResult {
  const norm = (h: Matrix, name: string) => layerNormParams(h, params, join(prefix, name), o.eps);
  const self = (h: Matrix) =>
    selfAttention(h, params, join(prefix, "attn"), {
      numHeads: o.numHeads,
      causal: o.causal,
      allowed: o.selfAllowed,
      past: o.past,
    });
  let selfResult: ReturnType<typeof self>;
  if (o.preNorm) {
    selfResult = self(norm(x, "ln_1"));
    x = add(x, selfResult.output);
  } else {
    selfResult = self(x);
    x = norm(add(x, selfResult.output), "ln_1");
  }
  let crossWeights: Matrix[] | undefined;
  if (o.context) {
    const context = o.context;
    const cross = (h: Matrix) =>
      crossAttention(h, context, params, join(prefix, "crossattention"), {
        numHeads: o.numHeads,
        allowed: o.crossAllowed,
      });
    if (o.preNorm) {
      const r = cross(norm(x, "ln_cross_attn"));
      crossWeights = r.weights;
      x = add(x, r.output);
    } else {
      const r = cross(x);
      crossWeights = r.weights;
      x = norm(add(x, r.output), "ln_cross_attn");
    }
  }
  const feed = (h: Matrix) => mlp(h, params, join(prefix, "mlp"), o.activation);
  x = o.preNorm ? add(x, feed(norm(x, "ln_2"))) : norm(add(x, feed(x)), "ln_2");
  return { output: x, selfWeights: selfResult.weights, crossWeights, keys: selfResult.keys, values: selfResult.values };
}

// ---------------------------------------------------------------------------------------------------------
// Whole models
// ---------------------------------------------------------------------------------------------------------

export interface GPTReferenceConfig {
  numLayers: number;
  numHeads: number;
  eps: number;
  activation: ActivationName;
  preNorm: boolean;
  /** true: logits = x · wteᵀ; false: logits = x · lm_head.weight, stored (C, V). */
  tieWeights: boolean;
}

/** ids (B, T) → logits (B, T, V): wte[ids] + wpe[positions] → blocks → ln_f → head. */
export function gptForward(ids: number[][], params: Params, config: GPTReferenceConfig): Matrix[] {
  const wte = matrixParam(params, "wte.weight");
  const wpe = matrixParam(params, "wpe.weight");
  return ids.map((sequence) => {
    let x: Matrix = sequence.map((id, t) => wte[id].map((value, c) => value + wpe[t][c]));
    for (let l = 0; l < config.numLayers; l++) {
      x = block(x, params, `h.${l}`, {
        numHeads: config.numHeads,
        eps: config.eps,
        activation: config.activation,
        preNorm: config.preNorm,
        causal: true,
      }).output;
    }
    x = layerNormParams(x, params, "ln_f", config.eps);
    return config.tieWeights ? matmul(x, transpose(wte)) : matmul(x, matrixParam(params, "lm_head.weight"));
  });
}

/** PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)). */
export function sinusoidal(length: number, dim: number): Matrix {
  const out = zeros(length, dim);
  for (let pos = 0; pos < length; pos++) {
    for (let c = 0; c < dim; c++) {
      const i = Math.floor(c / 2);
      const angle = pos / 10000 ** ((2 * i) / dim);
      out[pos][c] = c % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return out;
}

export interface EncoderDecoderReferenceConfig {
  numLayers: number;
  numHeads: number;
  eps: number;
  activation: ActivationName;
  preNorm: boolean;
}

/**
 * The original Transformer, as the course builds it: embeddings scaled by √C plus sinusoidal positions;
 * encoder blocks (bidirectional, source padding masked), optional ln_enc (pre-LN only); decoder blocks
 * (causal self-attention, cross-attention to the encoder output with the same padding), optional ln_dec;
 * then lm_head (with bias). sourceMask: per sequence, 1 = real token, 0 = padding.
 */
export function encoderDecoderForward(
  sourceIds: number[][],
  targetIds: number[][],
  params: Params,
  config: EncoderDecoderReferenceConfig,
  sourceMask?: number[][],
): Matrix[] {
  const srcTable = matrixParam(params, "source_embedding.weight");
  const tgtTable = matrixParam(params, "target_embedding.weight");
  const C = srcTable[0].length;
  const embed = (table: Matrix, ids: number[]): Matrix => {
    const pe = sinusoidal(ids.length, C);
    return ids.map((id, t) => table[id].map((value, c) => value * Math.sqrt(C) + pe[t][c]));
  };
  return sourceIds.map((source, b) => {
    const padding = sourceMask ? keyPaddingAllowed(sourceMask[b]) : undefined;
    let memory = embed(srcTable, source);
    for (let l = 0; l < config.numLayers; l++) {
      memory = block(memory, params, `encoder.${l}`, {
        numHeads: config.numHeads,
        eps: config.eps,
        activation: config.activation,
        preNorm: config.preNorm,
        causal: false,
        selfAllowed: padding,
      }).output;
    }
    if (config.preNorm) memory = layerNormParams(memory, params, "ln_enc", config.eps);
    let x = embed(tgtTable, targetIds[b]);
    for (let l = 0; l < config.numLayers; l++) {
      x = block(x, params, `decoder.${l}`, {
        numHeads: config.numHeads,
        eps: config.eps,
        activation: config.activation,
        preNorm: config.preNorm,
        causal: true,
        context: memory,
        crossAllowed: padding,
      }).output;
    }
    if (config.preNorm) x = layerNormParams(x, params, "ln_dec", config.eps);
    return linear(x, params, "lm_head");
  });
}

// ---------------------------------------------------------------------------------------------------------
// Loss
// ---------------------------------------------------------------------------------------------------------

/**
 * Mean cross-entropy over the positions whose target ≠ ignoreIndex, and its gradient with respect to the
 * logits, (softmax − onehot) / N on counted rows and 0 on ignored rows. No counted rows: loss 0, grad 0.
 * logits (N, V), targets (N).
 */
export function crossEntropy(logits: Matrix, targets: number[], ignoreIndex = -100): { loss: number; grad: Matrix } {
  const V = logits[0].length;
  const counted = targets.filter((t) => t !== ignoreIndex).length;
  let total = 0;
  const grad = zeros(logits.length, V);
  logits.forEach((row, i) => {
    const target = targets[i];
    if (target === ignoreIndex) return;
    if (!(Number.isInteger(target) && target >= 0 && target < V))
      throw new Error(`reference: target ${target} out of range`);
    total += logSumExp(row) - row[target];
    const p = softmax(row);
    for (let j = 0; j < V; j++) grad[i][j] = (p[j] - (j === target ? 1 : 0)) / counted;
  });
  return { loss: counted === 0 ? 0 : total / counted, grad };
}
