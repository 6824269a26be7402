/**
 * Downloads a pretrained GPT-2 from the Hugging Face Hub (needs internet; never run by the tests).
 *
 *   npm run download:gpt2 -- [gpt2 | gpt2-medium | gpt2-large | gpt2-xl] [--out models]
 *
 * Fetches config.json and model.safetensors into models/<name>/, with a progress bar. An interrupted
 * download resumes where it stopped (HTTP range requests on a .partial file), and each file is checked
 * against the checksum the Hub publishes for it (SHA-256 for large files, the git blob hash for small ones).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { formatBytes, ProgressBar } from "gpt-course";
import { fail, run } from "./cli.js";

const models = ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"];
const files = ["config.json", "model.safetensors"];
const hub = "https://huggingface.co/openai-community";

run(async () => {
  const args = process.argv.slice(2);
  const outIndex = args.indexOf("--out");
  const root = outIndex >= 0 ? args[outIndex + 1] : "models";
  const positional = args.filter((_, i) => i !== outIndex && i !== outIndex + 1);
  const name = positional[0] ?? "gpt2";
  if (!root) fail("--out needs a folder.");
  if (!models.includes(name)) fail(`unknown model "${name}". Choose one of: ${models.join(", ")}.`);
  const directory = path.join(root, name);
  fs.mkdirSync(directory, { recursive: true });
  for (const file of files) await download(`${hub}/${name}/resolve/main/${file}`, path.join(directory, file));
  console.error(`done: ${directory} (load it with loadGPT2("${directory}"))`);
});

/** The checksum the Hub publishes: x-linked-etag (SHA-256) for LFS files, else the etag (git blob SHA-1). */
async function expectedChecksum(url: string): Promise<{ algorithm: "sha256" | "git-sha1"; hex: string; size: number }> {
  const response = await fetch(url, { method: "HEAD", redirect: "manual" });
  if (response.status >= 400) throw new Error(`${url}: HTTP ${response.status}`);
  const linked = response.headers.get("x-linked-etag");
  const etag = (linked ?? response.headers.get("etag") ?? "").replace(/^W\//, "").replace(/"/g, "");
  const size = Number(response.headers.get("x-linked-size") ?? response.headers.get("content-length") ?? NaN);
  return { algorithm: linked ? "sha256" : "git-sha1", hex: etag, size };
}

async function download(url: string, destination: string): Promise<void> {
  const expected = await expectedChecksum(url);
  if (fs.existsSync(destination) && (await checksum(destination, expected.algorithm)) === expected.hex) {
    console.error(`${destination}: already downloaded and verified`);
    return;
  }
  const partial = `${destination}.partial`;
  const have = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
  const response = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
  if (!response.ok || !response.body) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
  const resuming = response.status === 206;
  if (have > 0)
    console.error(
      resuming
        ? `${destination}: resuming at ${formatBytes(have)}`
        : `${destination}: server cannot resume; starting over`,
    );
  const total = Number.isFinite(expected.size)
    ? expected.size
    : have + Number(response.headers.get("content-length") ?? 0);
  const bar = new ProgressBar(total, path.basename(destination), process.stderr, formatBytes);
  const out = fs.createWriteStream(partial, { flags: resuming ? "a" : "w" });
  let received = resuming ? have : 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once("drain", () => resolve()));
    received += chunk.length;
    bar.update(received);
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  bar.finish();
  const actual = await checksum(partial, expected.algorithm);
  if (expected.hex && actual !== expected.hex) {
    fs.rmSync(partial);
    throw new Error(
      `${destination}: checksum mismatch (expected ${expected.hex}, got ${actual}); the partial file was removed, run again.`,
    );
  }
  fs.renameSync(partial, destination);
}

/** SHA-256 of the file, or git's blob hash: SHA-1 of "blob <size>\0" followed by the content. */
async function checksum(file: string, algorithm: "sha256" | "git-sha1"): Promise<string> {
  const hash = createHash(algorithm === "sha256" ? "sha256" : "sha1");
  if (algorithm === "git-sha1") hash.update(`blob ${fs.statSync(file).size}\0`);
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
