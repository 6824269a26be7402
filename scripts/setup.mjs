#!/usr/bin/env node
/**
 * `npm run setup`: install everything the course needs on a fresh machine.
 *
 * 1. `npm install` (npm packages; the root postinstall builds lib/ into lib/dist);
 * 2. checks that the native pieces work (zeromq's prebuilt addon that the tslab kernel uses, esbuild);
 * 3. checks for Jupyter (Notebook or Lab) and a Python with nbclient/nbconvert; if missing:
 *    - on Debian/Ubuntu as root (or with password-less sudo): apt-get installs the Debian packages;
 *    - else, when pip is available: `python3 -m pip install notebook nbclient nbconvert`;
 *    - else prints the commands to run yourself;
 * 4. checks that Jupyter sees the repo's TypeScript kernel (jupyter/kernels/tslab, through JUPYTER_PATH);
 * 5. checks for Chromium, which draws the course's figures for `npm run figures` and the figure tests
 *    (Debian's `chromium`, installed with the packages above; elsewhere set CHROMIUM=/path/to/chrome).
 *
 * Options: --skip-npm (Jupyter part only), --skip-jupyter (npm part only), --with-torch (also the Debian
 * PyTorch packages that the reference-comparison tests use).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  APT_PACKAGES,
  APT_PACKAGES_OPTIONAL,
  findJupyter,
  findNotebookRunnerPython,
  INSTALL_HELP,
  jupyterEnv,
  repo,
} from "./jupyter-env.mjs";

const args = new Set(process.argv.slice(2));
const problems = [];

function step(message) {
  console.log(`\n[setup] ${message}`);
}

function run(cmd, argv, options = {}) {
  console.log(`[setup] $ ${[cmd, ...argv].join(" ")}`);
  const result = spawnSync(cmd, argv, { stdio: "inherit", cwd: repo, ...options });
  return result.status === 0 && !result.error;
}

function succeeds(cmd, argv) {
  const result = spawnSync(cmd, argv, { stdio: "ignore", timeout: 60_000 });
  return result.status === 0 && !result.error;
}

const major = Number(process.versions.node.split(".")[0]);
if (major < 20) {
  console.error(`[setup] Node.js ${process.versions.node} is too old: the course needs Node 20 or newer.`);
  process.exit(1);
}

// 1-2. npm packages and their native parts.
if (!args.has("--skip-npm")) {
  step("installing npm packages (npm install; this also builds lib/) ...");
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  if (!run(npm, ["install"], { shell: process.platform === "win32" })) {
    console.error("[setup] npm install failed (see above).");
    process.exit(1);
  }
}
if (existsSync(join(repo, "node_modules"))) {
  step("checking native pieces ...");
  const requireFromTslab = createRequire(join(repo, "node_modules", "tslab", "package.json"));
  try {
    requireFromTslab("zeromq");
    console.log("[setup] ok: zeromq (used by the tslab kernel) loads");
  } catch (e) {
    problems.push(`zeromq, which the tslab kernel needs, does not load: ${e.message.split("\n")[0]}`);
  }
  try {
    createRequire(join(repo, "package.json"))("esbuild").transformSync("let a: number = 1", { loader: "ts" });
    console.log("[setup] ok: esbuild (used by vitest and tsx) works");
  } catch (e) {
    problems.push(`esbuild does not work: ${e.message.split("\n")[0]}`);
  }
  if (existsSync(join(repo, "lib", "dist", "index.js"))) console.log("[setup] ok: lib/dist is built");
  else problems.push("lib/dist/index.js is missing: run `npm run build` and fix what it reports");
}

// 3. Jupyter.
if (!args.has("--skip-jupyter")) {
  step("looking for Jupyter and nbclient ...");
  let jupyter = findJupyter();
  let python = findNotebookRunnerPython();
  const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
  const needChromium = !existsSync(chromium);
  if (!jupyter || !python || needChromium || args.has("--with-torch")) {
    const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
    const hasApt = process.platform === "linux" && succeeds("apt-get", ["--version"]);
    const sudo = isRoot ? [] : succeeds("sudo", ["-n", "true"]) ? ["sudo", "-n"] : undefined;
    const packages = [
      ...APT_PACKAGES,
      ...(needChromium ? ["chromium"] : []),
      ...(args.has("--with-torch") ? APT_PACKAGES_OPTIONAL : []),
    ];
    if (hasApt && sudo) {
      const [cmd, ...pre] = [...sudo, "apt-get"];
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      if (
        !run(cmd, [...pre, "update"], { env }) ||
        !run(cmd, [...pre, "install", "-y", "--no-install-recommends", ...packages], { env })
      ) {
        problems.push("apt-get could not install the Debian packages (see above)");
      }
    } else if (!jupyter || !python) {
      const pip = ["python3", "/usr/bin/python3"].find((py) => succeeds(py, ["-m", "pip", "--version"]));
      if (pip && !hasApt) {
        if (!run(pip, ["-m", "pip", "install", "notebook", "nbclient", "nbconvert"])) {
          problems.push("pip could not install Jupyter (see above)");
        }
      } else {
        console.log(
          hasApt
            ? "[setup] this is Debian/Ubuntu but not root (and sudo needs a password): run the apt-get line below yourself."
            : "[setup] neither apt-get nor pip is available.",
        );
      }
    }
    jupyter = findJupyter();
    python = findNotebookRunnerPython();
  }
  if (jupyter)
    console.log(
      `[setup] ok: ${jupyter.app === "lab" ? "JupyterLab" : "Jupyter Notebook"} ${jupyter.version} (${jupyter.launcher.join(" ")})`,
    );
  else problems.push(`Jupyter (Notebook or Lab) is not installed.\n${INSTALL_HELP}`);
  if (python) console.log(`[setup] ok: ${python} has nbclient and nbconvert (notebook tests, HTML export)`);
  else problems.push(`no Python with nbclient and nbconvert (needed by the notebook tests).\n${INSTALL_HELP}`);

  if (existsSync(chromium))
    console.log(`[setup] ok: Chromium at ${chromium} (draws the figures for \`npm run figures\` and the figure tests)`);
  else
    problems.push(
      `Chromium was not found at ${chromium}: the figure tests and \`npm run figures\` draw figures in it. Install Chromium or Chrome and set CHROMIUM=/path/to/it.`,
    );

  // 4. The repo's kernelspec.
  if (jupyter) {
    const [cmd, ...pre] = jupyter.launcher;
    const list = spawnSync(cmd, [...pre, "kernelspec", "list"], { encoding: "utf8", env: jupyterEnv() });
    if (list.status === 0 && /\btslab\b/.test(list.stdout))
      console.log("[setup] ok: Jupyter sees the TypeScript (tslab) kernel");
    else
      problems.push(
        `Jupyter does not list the tslab kernel (jupyter/kernels/tslab/kernel.json):\n${list.stdout}${list.stderr}`,
      );
  }
}

if (problems.length) {
  console.error(`\n[setup] ${problems.length} problem(s):`);
  for (const p of problems) console.error(`- ${p}`);
  process.exit(1);
}
console.log("\n[setup] done. Next: `npm test` runs the tests, `npm start` opens the course in Jupyter.");
