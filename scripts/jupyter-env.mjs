/**
 * Finding Jupyter and preparing its environment: shared by scripts/start.mjs (`npm start`) and
 * scripts/setup.mjs (`npm run setup`). Node built-ins only, so it works before `npm install`.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, realpathSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The Debian packages the course and its tests use (the PyTorch ones only for reference-comparison tests). */
export const APT_PACKAGES = [
  "jupyter-notebook",
  "jupyter-nbconvert",
  "python3-nbclient",
  "jupyter-client",
  "jupyter-core",
];
export const APT_PACKAGES_OPTIONAL = ["python3-torch", "libopenblas0-pthread"];

export const INSTALL_HELP = `Install the Jupyter pieces:
  Debian/Ubuntu:  sudo apt-get install -y --no-install-recommends ${APT_PACKAGES.join(" ")}
  other systems:  python3 -m pip install notebook nbclient nbconvert      (or jupyterlab instead of notebook)
                  (if pip refuses with "externally-managed-environment", use a virtual environment:
                   python3 -m venv ~/.venvs/jupyter && ~/.venvs/jupyter/bin/pip install notebook nbclient nbconvert
                   and put ~/.venvs/jupyter/bin on your PATH)
If Jupyter is installed somewhere unusual: JUPYTER=/path/to/jupyter JUPYTER_PYTHON=/path/to/python npm start`;

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Ways to run `jupyter <subcommand>`, most specific first, without duplicates. Each is an argv prefix. */
export function jupyterLaunchers() {
  const launchers = [];
  const seen = new Set();
  const add = (argv, key = argv.join(" ")) => {
    if (seen.has(key)) return;
    seen.add(key);
    launchers.push(argv);
  };
  const addExecutable = (path) => {
    if (!path || !isExecutable(path)) return;
    let real = path;
    try {
      real = realpathSync(path);
    } catch {
      /* keep path */
    }
    add([path], real);
  };
  if (process.env.JUPYTER) addExecutable(process.env.JUPYTER);
  for (const dir of (process.env.PATH ?? "").split(delimiter)) if (dir) addExecutable(join(dir, "jupyter"));
  addExecutable("/usr/bin/jupyter");
  addExecutable("/usr/local/bin/jupyter");
  for (const python of pythonCandidates()) add([python, "-m", "jupyter"]);
  return launchers;
}

/** Pythons that may hold Jupyter: $JUPYTER_PYTHON, python3 on PATH, the system one. */
export function pythonCandidates() {
  return [process.env.JUPYTER_PYTHON, "python3", "/usr/bin/python3"].filter(Boolean);
}

const quietEnv = () => ({ ...process.env, PYDEVD_DISABLE_FILE_VALIDATION: "1" });

/**
 * The first launcher that runs JupyterLab, else the first that runs the classic Notebook
 * (`apps` restricts the choice). Returns { launcher, app, version } or undefined.
 */
export function findJupyter(apps = ["lab", "notebook"]) {
  const launchers = jupyterLaunchers();
  for (const app of apps) {
    for (const launcher of launchers) {
      const [cmd, ...pre] = launcher;
      const probe = spawnSync(cmd, [...pre, app, "--version"], {
        encoding: "utf8",
        timeout: 60_000,
        stdio: ["ignore", "pipe", "pipe"],
        env: quietEnv(),
      });
      if (probe.status === 0) {
        const version = probe.stdout.trim().split("\n").pop();
        return { launcher, app, version };
      }
    }
  }
  return undefined;
}

/** A Python that can import nbclient and nbconvert (what scripts/run-notebooks.py and HTML export need). */
export function findNotebookRunnerPython() {
  for (const python of pythonCandidates()) {
    const probe = spawnSync(python, ["-c", "import nbclient, nbconvert, nbformat, jupyter_client"], {
      stdio: "ignore",
      timeout: 60_000,
      env: quietEnv(),
    });
    if (probe.status === 0) return python;
  }
  return undefined;
}

/** Environment for Jupyter: the repo's kernelspec on JUPYTER_PATH, this Node first on PATH. */
export function jupyterEnv(base = process.env) {
  return {
    ...base,
    JUPYTER_PATH: [join(repo, "jupyter"), base.JUPYTER_PATH].filter(Boolean).join(delimiter),
    // The kernelspec runs `/usr/bin/env node`: make that the Node running this script.
    PATH: [dirname(process.execPath), base.PATH].filter(Boolean).join(delimiter),
    PYDEVD_DISABLE_FILE_VALIDATION: "1",
  };
}
