/**
 * Micro-benchmarks of single kernels on wasm, tfjs's own kernel against lib/kernels' replacement, in wall-clock
 * time (best of REPS=20 runs), and the multiply-add peak they are measured against:
 * `node_modules/.bin/tsx --conditions=source bench/micro.ts [filter]`.
 */
import { geluTanh, initBackend, scaledDotProductAttention, tf } from "gpt-course";
import { fusedGeluTanh, fusedLayerNorm } from "../lib/kernels/fused.ts";
import { relaxedSimdAvailable } from "../lib/kernels/gemm.ts";
import { unregisterWasmKernels, registerWasmKernels } from "../lib/kernels/index.ts";
import { Func } from "../lib/kernels/wasm-asm.ts";
import { encodeModule } from "../lib/kernels/wasm-module.ts";

/**
 * Best (minimum) wall-clock time of `reps` runs: on a shared machine the minimum is the run least disturbed
 * by other processes, the most repeatable figure for a kernel of a few milliseconds.
 */
function bestMs(f: () => tf.Tensor | tf.Tensor[], reps: number): number {
  tf.dispose(f()); // warm-up (JIT, XNNPACK operator creation)
  tf.dispose(f());
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    const out = f();
    best = Math.min(best, performance.now() - start);
    tf.dispose(out);
  }
  return best;
}

interface Case {
  label: string;
  flops?: number;
  inputs: () => tf.Tensor[];
  run: (...x: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
}

const mm = (label: string, aShape: number[], bShape: number[], ta: boolean, tb: boolean): Case => {
  const M = ta ? aShape[aShape.length - 1] : aShape[aShape.length - 2];
  const K = ta ? aShape[aShape.length - 2] : aShape[aShape.length - 1];
  const N = tb ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
  const batch = aShape.slice(0, -2).reduce((p, d) => p * d, 1);
  return {
    label,
    flops: 2 * batch * M * N * K,
    inputs: () => [tf.randomNormal(aShape), tf.randomNormal(bShape)],
    run: (a, b) => tf.matMul(a, b, ta, tb),
  };
};

const cases: Case[] = [
  mm("matmul attn q·kᵀ [64,128,32]·[64,128,32]ᵀ", [64, 128, 32], [64, 128, 32], false, true),
  mm("matmul attn w·v [64,128,128]·[64,128,32]", [64, 128, 128], [64, 128, 32], false, false),
  mm("matmul attn wᵀ·dO [64,128,128]ᵀ·[64,128,32]", [64, 128, 128], [64, 128, 32], true, false),
  mm("matmul linear [2048,128]·[128,512]", [2048, 128], [128, 512], false, false),
  mm("matmul linear dW [2048,128]ᵀ·[2048,512]", [2048, 128], [2048, 512], true, false),
  mm("matmul linear dX [2048,512]·[128,512]ᵀ", [2048, 512], [128, 512], false, true),
  {
    label: "transpose [16,128,4,32] → [0,2,1,3]",
    inputs: () => [tf.randomNormal([16, 128, 4, 32])],
    run: (x) => tf.transpose(x, [0, 2, 1, 3]),
  },
  { label: "transpose [2048,512]", inputs: () => [tf.randomNormal([2048, 512])], run: (x) => tf.transpose(x) },
  { label: "pow 3 [16,128,512]", inputs: () => [tf.randomNormal([16, 128, 512])], run: (x) => tf.pow(x, 3) },
  { label: "tanh [16,128,512]", inputs: () => [tf.randomNormal([16, 128, 512])], run: (x) => tf.tanh(x) },
  { label: "sum axis 0 [2048,512]", inputs: () => [tf.randomNormal([2048, 512])], run: (x) => tf.sum(x, 0) },
  { label: "clone [16,128,512]", inputs: () => [tf.randomNormal([16, 128, 512])], run: (x) => tf.clone(x) },
  { label: "split 3 [16,128,384]", inputs: () => [tf.randomNormal([16, 128, 384])], run: (x) => tf.split(x, 3, -1) },
  {
    label: "concat 3 [16,128,128] axis -1",
    inputs: () => [tf.randomNormal([16, 128, 128]), tf.randomNormal([16, 128, 128]), tf.randomNormal([16, 128, 128])],
    run: (a, b, c) => tf.concat([a, b, c], -1),
  },
  { label: "softmax [16,4,128,128]", inputs: () => [tf.randomNormal([16, 4, 128, 128])], run: (x) => tf.softmax(x) },
  {
    label: "mul [16,128,512]²",
    inputs: () => [tf.randomNormal([16, 128, 512]), tf.randomNormal([16, 128, 512])],
    run: (a, b) => tf.mul(a, b),
  },
  {
    label: "add bias [2048,512]+[512]",
    inputs: () => [tf.randomNormal([2048, 512]), tf.randomNormal([512])],
    run: (a, b) => tf.add(a, b),
  },
  {
    label: "gelu fwd+bwd [16,128,512] (fused on wasm)",
    inputs: () => [tf.randomNormal([16, 128, 512]), tf.randomNormal([16, 128, 512])],
    run: (x, w) => tf.grad((t: tf.Tensor) => (fusedGeluTanh(t) ?? geluTanh(t)).mul(w).sum())(x),
  },
  {
    label: "layernorm fwd+bwd [16,128,128] (fused on wasm)",
    inputs: () => [
      tf.randomNormal([16, 128, 128]),
      tf.randomNormal([128]),
      tf.randomNormal([128]),
      tf.randomNormal([16, 128, 128]),
    ],
    run: (x, g, b, w) =>
      tf.grads((t: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
        const fused = fusedLayerNorm(t, gg, bb, 1e-5);
        if (fused) return fused.mul(w).sum();
        const { mean, variance } = tf.moments(t, -1, true);
        return t
          .sub(mean)
          .mul(tf.rsqrt(variance.add(1e-5)))
          .mul(gg)
          .add(bb)
          .mul(w)
          .sum();
      })([x, g, b]),
  },
  {
    label: "attention fwd+bwd [16,4,128,32] causal",
    inputs: () => [
      tf.randomNormal([16, 4, 128, 32]),
      tf.randomNormal([16, 4, 128, 32]),
      tf.randomNormal([16, 4, 128, 32]),
      tf.randomNormal([16, 4, 128, 32]),
    ],
    run: (q, k, v, w) =>
      tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        scaledDotProductAttention(a, b, c, { causal: true }).output.mul(w).sum(),
      )([q, k, v]),
  },
  {
    label: "moments last axis [16,128,128]",
    inputs: () => [tf.randomNormal([16, 128, 128])],
    run: (x) => {
      const m = tf.moments(x, -1, true);
      return [m.mean, m.variance];
    },
  },
];

/**
 * The ceiling for every SIMD kernel here: vector multiply-adds per second on one thread, with 12 independent
 * sums (enough to hide the instruction's latency) and no loads. WebAssembly's vectors are 128 bits (4
 * floats), whatever wider vectors the CPU has.
 */
function multiplyAddPeak(): { fused: boolean; gflops: number } {
  const fused = relaxedSimdAvailable();
  const f = new Func("peak", 1);
  const i = f.local("i32");
  const sums = Array.from({ length: 12 }, () => f.local("v128"));
  const [x, y] = [f.local("v128"), f.local("v128")];
  f.f32(1.0000001).splat().set(x);
  f.f32(0.9999999).splat().set(y);
  f.forRange(
    i,
    () => f.i32(0),
    () => f.get(0),
    1,
    () => {
      for (const sum of sums)
        f.multiplyAdd(
          fused,
          () => f.get(x),
          () => f.get(y),
          sum,
        );
    },
  );
  for (const sum of sums) f.i32(0).get(sum).store(); // stored, so that the loop is not optimised away
  const memory = new WebAssembly.Memory({ initial: 1 });
  const module = new WebAssembly.Module(encodeModule([f], false));
  const peak = (new WebAssembly.Instance(module, { env: { memory } }).exports as { peak: (n: number) => void }).peak;
  const iterations = 20_000_000;
  peak(iterations); // warm-up: the optimising compiler
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const start = performance.now();
    peak(iterations);
    best = Math.min(best, performance.now() - start);
  }
  return { fused, gflops: (iterations * sums.length * 8) / best / 1e6 }; // 4 lanes × (multiply + add)
}

async function main() {
  await initBackend("wasm");
  const filter = process.argv[2] ?? "";
  if ("multiply-add peak".includes(filter)) {
    const { fused, gflops } = multiplyAddPeak();
    console.log(
      `multiply-add peak, one thread, 128-bit SIMD (${fused ? "fused" : "multiply, then add"}): ${gflops.toFixed(1)} GFLOP/s`,
    );
  }
  const reps = Number(process.env.REPS ?? 20);
  console.log(`${"case".padEnd(48)} ${"tfjs ms".padStart(9)} ${"ours ms".padStart(9)} ${"speed-up".padStart(8)}`);
  for (const c of cases.filter((c) => c.label.includes(filter))) {
    const inputs = c.inputs();
    unregisterWasmKernels();
    const before = bestMs(
      () => c.run(...inputs),
      c.label.includes("matmul") && !c.label.includes("linear [") ? 5 : reps,
    );
    registerWasmKernels();
    const after = bestMs(() => c.run(...inputs), reps);
    const gflops = (ms: number) => (c.flops ? ` (${(c.flops / ms / 1e6).toFixed(1)} GFLOP/s)` : "");
    console.log(
      `${c.label.padEnd(48)} ${before.toFixed(2).padStart(9)} ${after.toFixed(2).padStart(9)} ${(before / after).toFixed(1).padStart(7)}x${gflops(before)} →${gflops(after)}`,
    );
    tf.dispose(inputs);
  }
}
main().then(() => process.exit(0));
