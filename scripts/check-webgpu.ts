/**
 * Checks that WebGPU computes what the CPU computes: a small GPT's logits, loss and one training step's
 * updated weights, on the plain JavaScript backend and then on WebGPU.
 *
 *   npm run check:webgpu                                                       # on a machine with a GPU
 *   EGL_PLATFORM=surfaceless GPT_WEBGPU_DAWN=backend=opengl npm run check:webgpu   # no GPU: Dawn on Mesa
 *
 * The second form runs WebGPU on Mesa's software OpenGL renderer (Debian: libegl1 libegl-mesa0
 * libgl1-mesa-dri); it is slow (shaders compile on the CPU) but exercises every WebGPU kernel we use.
 */
import { crossEntropy, GPT, initBackend, tf, TokenDataset, Trainer } from "gpt-course";
import { run } from "./cli.js";

interface Result {
  logits: Float32Array;
  loss: number;
  weight: Float32Array;
}

async function compute(backend: string): Promise<Result> {
  const info = await initBackend(backend);
  console.log(`${info.name}: ${info.description}`);
  const model = new GPT({ preset: "tiny", seed: 3 });
  const stream = Array.from({ length: 600 }, (_, i) => (i * 7 + (i >> 3)) % 65);
  const data = new TokenDataset(stream, { contextLength: 16, batchSize: 4, seed: 1 });
  const { inputs, targets } = data.nextBatch("train");
  // Asynchronous reads only: tfjs's WebGPU backend cannot read synchronously in Node.
  const logitsTensor = tf.tidy(() => model.forward(inputs));
  const lossTensor = tf.tidy(() => crossEntropy(model.forward(inputs), targets));
  const logits = (await logitsTensor.data()) as Float32Array;
  const loss = (await lossTensor.data())[0];
  tf.dispose([logitsTensor, lossTensor]);
  const trainer = new Trainer(model, data, { maxSteps: 2, warmupSteps: 1 });
  await trainer.trainStep();
  const weight = (await model.h[0].attn.c_attn.weight.data()) as Float32Array;
  tf.dispose([inputs, targets]);
  trainer.dispose();
  model.dispose();
  return { logits: logits.slice(), loss, weight: weight.slice() };
}

function relativeDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / Math.max(scale, 1e-12);
}

run(async () => {
  const cpu = await compute("cpu");
  const started = performance.now();
  const gpu = await compute("webgpu");
  const differences = {
    logits: relativeDifference(gpu.logits, cpu.logits),
    loss: Math.abs(gpu.loss - cpu.loss) / Math.abs(cpu.loss),
    "weights after one AdamW step": relativeDifference(gpu.weight, cpu.weight),
  };
  for (const [what, difference] of Object.entries(differences))
    console.log(`${what}: relative difference ${difference.toExponential(2)}`);
  console.log(`WebGPU run took ${((performance.now() - started) / 1000).toFixed(1)} s (shader compilation included)`);
  const tolerance = 1e-4;
  const failed = Object.entries(differences).filter(([, difference]) => !(difference < tolerance));
  if (failed.length > 0)
    throw new Error(`WebGPU differs from the CPU beyond ${tolerance}: ${failed.map(([what]) => what).join(", ")}`);
  console.log(`WebGPU matches the CPU within ${tolerance}.`);
});
