/**
 * Chat with your own model in the browser: builds the page in web/ and serves it.
 *
 *   npm run web -- [--checkpoint DIR] [--port 8080] [--host 127.0.0.1]
 *   npm run web:build        (only the build, into web/dist: then web/ can go on any static host)
 *
 * The model runs in the page, on lib's own code (bundled by esbuild): this server only hands out files. It
 * serves web/ at / and the checkpoint folder's config.json and model.safetensors at /checkpoint/, where the
 * page looks first; without --checkpoint the page asks the learner to pick the files.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import * as esbuild from "esbuild";
import { fail, integerFlag, parseCommandLine, run } from "./cli.js";

const usage = `usage: npm run web -- [options]
  --checkpoint DIR   the checkpoint to chat with (config.json + model.safetensors), e.g. checkpoints/chat
  --port N           port to serve on (default 8080; 0 picks a free one)
  --host HOST        address to listen on (default 127.0.0.1: this computer only)
  --build-only       build web/dist and stop (npm run web:build)`;

const repo = path.resolve(__dirname, "..");
const webFolder = path.join(repo, "web");
const distFolder = path.join(webFolder, "dist");

/** The files of a checkpoint that the page needs (the optimizer state stays on disk). */
const CHECKPOINT_FILES = ["config.json", "model.safetensors"];

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm", // WebAssembly.instantiateStreaming requires this type
  ".safetensors": "application/octet-stream",
};

/**
 * Bundles web/app.ts and the lib modules it imports into web/dist/app.js, next to tfjs's WebAssembly
 * binaries. lib's TypeScript is bundled directly (the "source" condition), never lib/index.ts: the index also
 * re-exports Node-only modules. A few lib files import node: modules for their Node-only functions (saving
 * files, worker threads); those imports become empty stubs here, and the page never calls those functions.
 */
export async function buildWeb(): Promise<void> {
  fs.rmSync(distFolder, { recursive: true, force: true });
  await esbuild.build({
    entryPoints: [path.join(webFolder, "app.ts")],
    outdir: distFolder,
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    conditions: ["source"],
    minify: true,
    sourcemap: true,
    logLevel: "warning",
    plugins: [nodeModulesAsStubs],
  });
  const wasmFolder = path.join(repo, "node_modules/@tensorflow/tfjs-backend-wasm/dist");
  for (const file of fs.readdirSync(wasmFolder).filter((name) => name.endsWith(".wasm"))) {
    fs.copyFileSync(path.join(wasmFolder, file), path.join(distFolder, file));
  }
}

/** `import ... from "node:fs"` (and the other node: modules) resolves to an empty CommonJS module. */
const nodeModulesAsStubs: esbuild.Plugin = {
  name: "node-modules-as-stubs",
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: "node-stub" }));
    build.onLoad({ filter: /.*/, namespace: "node-stub" }, () => ({ contents: "module.exports = {};", loader: "js" }));
  },
};

/**
 * A static file server: web/ at /, the checkpoint's files at /checkpoint/. The two headers make the page
 * "cross-origin isolated", which browsers require before they allow SharedArrayBuffer, and so WebAssembly
 * threads.
 */
export function createWebServer(checkpoint: string | undefined): http.Server {
  return http.createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    let file: string | undefined;
    try {
      file = filePath(decodeURIComponent(url.pathname), checkpoint);
    } catch {
      response.writeHead(400).end(); // a malformed %-escape
      return;
    }
    response.setHeader("Cross-Origin-Opener-Policy", "same-origin");
    response.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
    response.setHeader("Cache-Control", "no-store"); // a rebuilt page or a new checkpoint shows at the next reload
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405).end();
      return;
    }
    if (!checkpoint && url.pathname.startsWith("/checkpoint/")) {
      response.writeHead(204).end(); // "no checkpoint here", without the 404 that browsers log as an error
      return;
    }
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      response.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end(`not found: ${url.pathname}\n`);
      return;
    }
    response.writeHead(200, {
      "Content-Type": CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream",
      "Content-Length": fs.statSync(file).size,
    });
    if (request.method === "HEAD") response.end();
    else fs.createReadStream(file).pipe(response);
  });
}

/** The file a URL path names, or undefined: only files inside web/ and the checkpoint's two files are served. */
function filePath(urlPath: string, checkpoint: string | undefined): string | undefined {
  if (urlPath.startsWith("/checkpoint/")) {
    const name = urlPath.slice("/checkpoint/".length);
    return checkpoint && CHECKPOINT_FILES.includes(name) ? path.join(checkpoint, name) : undefined;
  }
  const file = path.join(webFolder, urlPath.endsWith("/") ? `${urlPath}index.html` : urlPath);
  return file.startsWith(webFolder + path.sep) ? file : undefined; // no "/../" out of web/
}

if (require.main === module) {
  run(async () => {
    const flags = parseCommandLine(usage, {
      checkpoint: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "build-only": { type: "boolean" },
    });
    const checkpoint = flags.checkpoint === undefined ? undefined : path.resolve(flags.checkpoint);
    if (checkpoint) {
      const missing = CHECKPOINT_FILES.filter((name) => !fs.existsSync(path.join(checkpoint, name)));
      if (missing.length > 0)
        fail(`${flags.checkpoint} has no ${missing.join(" or ")}: is it a checkpoint folder (e.g. checkpoints/chat)?`);
    }
    const port = integerFlag("port", flags.port, 8080);
    const host = flags.host ?? "127.0.0.1";

    const started = Date.now();
    await buildWeb();
    console.log(`built web/dist in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (flags["build-only"]) return;

    const server = createWebServer(checkpoint);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "EADDRINUSE" ? new Error(`port ${port} is in use: choose another with --port`) : error),
      );
      server.listen(port, host, resolve);
    });
    const address = server.address() as { port: number };
    console.log(
      `serving http://${host}:${address.port}/${checkpoint ? ` with ${flags.checkpoint}` : " (pick a checkpoint in the page)"}`,
    );
    console.log("Ctrl-C stops the server.");
    await new Promise(() => undefined); // serve until Ctrl-C
  });
}
