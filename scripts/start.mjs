#!/usr/bin/env node
/**
 * `npm start`: open the course in Jupyter.
 *
 * 1. finds Jupyter (JupyterLab if installed, else the classic Notebook): $JUPYTER, `jupyter` on PATH,
 *    /usr/bin/jupyter, /usr/local/bin/jupyter, or `python3 -m jupyter` ($JUPYTER_PYTHON, python3, /usr/bin/python3);
 * 2. builds lib/ once (tsc → lib/dist, which notebooks import as `gpt-course`);
 * 3. keeps `tsc -p lib --watch` running in the background, so an edit in lib/ is compiled at once
 *    (restart the notebook's kernel to load it);
 * 4. starts Jupyter on notebooks/ with JUPYTER_PATH=<repo>/jupyter, where the TypeScript (tslab) kernelspec lives.
 *
 * Extra arguments go to Jupyter: `npm start -- --no-browser --port 8899`.
 * Ctrl-C (or SIGTERM) stops Jupyter (which shuts its kernels down) and the watcher.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { findJupyter, INSTALL_HELP, jupyterEnv, repo } from "./jupyter-env.mjs";

const tsc = join(repo, "node_modules", "typescript", "bin", "tsc"); // not node_modules/.bin/tsc (tslab's old TypeScript)
const extraArgs = process.argv.slice(2);

/** Child processes still running; each runs in its own process group (detached) and is stopped by us. */
const children = new Set();
let stopping = false;

function log(message) {
  console.log(`[start] ${message}`);
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal); // the child's whole process group
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** Starts a child in its own process group (so a terminal's Ctrl-C reaches only this script) and tracks it. */
function start(cmd, argv, options) {
  const child = spawn(cmd, argv, { ...options, detached: true });
  children.add(child);
  child.on("exit", () => children.delete(child));
  child.on("error", () => children.delete(child));
  return child;
}

function stop(reason, exitCode = 0) {
  if (stopping) return;
  stopping = true;
  if (process.exitCode === undefined) process.exitCode = exitCode;
  if (children.size === 0) return;
  log(`stopping (${reason}) ...`);
  for (const child of children) killGroup(child, "SIGTERM"); // Jupyter shuts its kernels down on SIGTERM
  setTimeout(() => {
    for (const child of children) {
      log(`${child.spawnargs.slice(0, 3).join(" ")} did not stop within 15 s; killing it`);
      killGroup(child, "SIGKILL");
    }
  }, 15_000).unref();
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => stop(sig, 130));
process.on("exit", () => {
  for (const child of children) killGroup(child, "SIGKILL"); // last resort
});

/** Prefixes each line a child writes with `[lib] `. */
function prefixLines(stream, prefix) {
  let pending = "";
  stream.on("data", (chunk) => {
    pending += chunk.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) console.log(`${prefix}${line}`);
  });
}

async function main() {
  const jupyter = findJupyter();
  if (!jupyter) {
    console.error(`Jupyter was not found. ${INSTALL_HELP}\nThen run \`npm start\` again.`);
    process.exitCode = 1;
    return;
  }
  const appName = jupyter.app === "lab" ? "JupyterLab" : "Jupyter Notebook";
  log(`using ${appName} ${jupyter.version} (${jupyter.launcher.join(" ")} ${jupyter.app})`);

  // 1. Build lib once, so notebooks never start on a missing or stale lib/dist.
  if (!existsSync(tsc)) {
    console.error("[start] node_modules/typescript is missing: run `npm run setup` (or `npm install`) first.");
    process.exitCode = 1;
    return;
  }
  log("building lib/ (tsc -p lib) ...");
  const build = start(process.execPath, [tsc, "-p", join(repo, "lib")], {
    cwd: repo,
    stdio: ["ignore", "inherit", "inherit"],
  });
  const buildStatus = await new Promise((done) => {
    build.on("error", (err) => done(err));
    build.on("exit", (code) => done(code));
  });
  if (stopping) return;
  if (buildStatus instanceof Error) {
    console.error(`[start] could not run TypeScript (${tsc}): ${buildStatus.message}`);
    process.exitCode = 1;
    return;
  }
  if (buildStatus !== 0) {
    if (!existsSync(join(repo, "lib", "dist", "index.js"))) {
      console.error("[start] building lib/ failed and lib/dist/index.js does not exist; fix the errors above.");
      process.exitCode = 1;
      return;
    }
    log("lib/ has TypeScript errors (above); tsc still wrote lib/dist, so notebooks can run. Fix them in lib/.");
  }

  // 2. Watch lib/ in the background; its output is prefixed with [lib].
  const watcher = start(process.execPath, [tsc, "-p", join(repo, "lib"), "--watch", "--preserveWatchOutput"], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
  });
  prefixLines(watcher.stdout, "[lib] ");
  prefixLines(watcher.stderr, "[lib] ");
  watcher.on("exit", (code, signal) => {
    if (!stopping) log(`lib watcher stopped (${signal ?? `exit ${code}`}); lib/ changes are no longer compiled`);
  });

  // 3. Jupyter on notebooks/, finding the repo's tslab kernelspec through JUPYTER_PATH.
  const args = [...jupyter.launcher.slice(1), jupyter.app, ...extraArgs];
  if (typeof process.getuid === "function" && process.getuid() === 0 && !extraArgs.includes("--allow-root")) {
    args.push("--allow-root"); // Jupyter refuses to run as root without it (containers, CI machines)
  }
  log(`starting ${appName} in ${join(repo, "notebooks")}; pick the "TypeScript (tslab)" kernel. Ctrl-C stops.`);
  const server = start(jupyter.launcher[0], args, {
    cwd: join(repo, "notebooks"),
    env: jupyterEnv(),
    stdio: ["ignore", "inherit", "inherit"],
  });
  server.on("error", (err) => {
    console.error(`[start] could not start Jupyter (${jupyter.launcher[0]}): ${err.message}`);
    stop("Jupyter failed to start", 1);
  });
  server.on("exit", (code, signal) => {
    if (!stopping) stop(`Jupyter exited (${signal ?? `code ${code}`})`, code ?? 1);
  });
}

main().catch((err) => {
  console.error(`[start] ${err?.stack ?? err}`);
  stop("error", 1);
});
