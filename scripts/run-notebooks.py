#!/usr/bin/env python3
"""Execute course notebooks with the repo-local TypeScript (tslab) kernel and report failures clearly.

Usage:
    scripts/run-notebooks.py [--quick] [--timeout S] [--out DIR] [--cwd DIR] [--verbose] [notebooks/*.ipynb]

Why not `jupyter nbconvert --execute`? tslab reports a failing cell only as status "error" in the execute
reply, with the message on stderr (no `error` output), and it answers requests that arrive just after an
error with status "aborted". nbconvert exits 1 without saying which cell failed, and nbclient does not treat
"aborted" as a failure. This runner:

  * runs each code cell in order and stops at the first cell whose reply is "error" or "aborted",
    printing the cell index, the head of its source and its stderr / traceback text;
  * retries a kernel start that hangs (a rare zeromq EBUSY race under load);
  * always shuts the kernel down and kills its process group (an orphaned tslab kernel can spin at 100% CPU),
    also on Ctrl-C / SIGTERM, and on Linux asks the kernel to die with this process (PR_SET_PDEATHSIG);
  * applies a per-cell timeout; with --quick sets COURSE_QUICK=1 for the kernel;
  * with --out DIR writes each executed notebook (outputs included) to DIR, e.g. for an HTML export.

Exit status: 0 when every notebook ran, 1 when one failed, 2 for a usage or set-up problem.

It needs Python with nbclient (Debian: apt-get install python3-nbclient jupyter-client; elsewhere:
pip install nbclient). If the Python running it lacks nbclient, it re-runs itself with one that has it:
$JUPYTER_PYTHON, the Python of the `jupyter` on PATH, or /usr/bin/python3.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNEL_NAME = "tslab"
SYSTEM_PYTHON = "/usr/bin/python3"


def _python_candidates() -> list[str]:
    """Pythons that may have nbclient: $JUPYTER_PYTHON, the one `jupyter` on PATH runs with, the system one."""
    found = [os.environ.get("JUPYTER_PYTHON", "")]
    import shutil

    jupyter = shutil.which("jupyter")
    if jupyter:
        try:
            with open(jupyter, "rb") as f:
                first = f.readline().decode("utf-8", "replace").strip()
            if first.startswith("#!") and "python" in first:
                found.append(first[2:].split()[0])
        except OSError:
            pass
    found.append(SYSTEM_PYTHON)
    here = os.path.realpath(sys.executable)
    return [p for p in dict.fromkeys(found) if p and os.path.exists(p) and os.path.realpath(p) != here]


def _ensure_nbclient() -> None:
    """Import nbclient, or re-exec with a Python that has it (Debian's Jupyter lives in /usr/bin/python3, not pyenv)."""
    try:
        from nbclient import NotebookClient  # noqa: F401
        import nbformat  # noqa: F401

        return
    except ImportError:
        pass
    if not os.environ.get("RUN_NOTEBOOKS_REEXEC"):
        import subprocess

        for python in _python_candidates():
            ok = subprocess.run(
                [python, "-c", "from nbclient import NotebookClient; import nbformat"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if ok.returncode == 0:
                os.environ["RUN_NOTEBOOKS_REEXEC"] = "1"
                os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])
    sys.stderr.write(
        f"run-notebooks: no Python with nbclient found (tried {sys.executable}"
        + "".join(f", {p}" for p in _python_candidates())
        + ").\n"
        "Install the Jupyter pieces:\n"
        "  Debian/Ubuntu: sudo apt-get install -y --no-install-recommends "
        "jupyter-notebook jupyter-nbconvert python3-nbclient jupyter-client jupyter-core\n"
        "  elsewhere:     python3 -m pip install notebook nbclient nbconvert\n"
        "or point JUPYTER_PYTHON at a Python that has nbclient.\n"
    )
    sys.exit(2)


_ensure_nbclient()

# Jupyter must find the repo-local kernelspec (jupyter/kernels/tslab/kernel.json).
_jp = os.environ.get("JUPYTER_PATH", "")
_repo_jp = str(REPO / "jupyter")
if _repo_jp not in _jp.split(os.pathsep):
    os.environ["JUPYTER_PATH"] = _repo_jp + (os.pathsep + _jp if _jp else "")
# Silence debugpy's "frozen modules" warning that Debian's Python 3.11 prints when Jupyter starts.
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError  # noqa: E402

try:
    from jupyter_client.kernelspec import NoSuchKernel  # noqa: E402
except ImportError:  # pragma: no cover
    NoSuchKernel = KeyError  # type: ignore


class Interrupted(BaseException):
    """Raised from SIGTERM / SIGINT so that `finally` blocks (kernel shutdown) run."""


def _on_signal(signum, _frame):
    # The interrupted cell's asyncio task finishes during cleanup; don't let asyncio log it as "never retrieved".
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    raise Interrupted(signal.Signals(signum).name)


def _die_with_parent() -> None:
    """preexec_fn for the kernel process: on Linux, get SIGKILL when this runner dies, however it dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def _text_of(output) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("text", "")
    if kind == "error":
        tb = output.get("traceback") or []
        return "\n".join(tb) if tb else f"{output.get('ename', '')}: {output.get('evalue', '')}"
    return ""


def _strip_ansi(s: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", s)


class NotebookFailure(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _cell_report(nb, index: int, what: str, reply_content: dict | None, source_lines: int = 12) -> str:
    cell = nb.cells[index]
    code_number = sum(1 for c in nb.cells[: index + 1] if c.cell_type == "code")
    src = cell.source.splitlines()
    head = "\n".join("    " + line for line in src[:source_lines])
    if len(src) > source_lines:
        head += f"\n    ... ({len(src) - source_lines} more lines)"
    stderr = "".join(
        _text_of(o)
        for o in cell.get("outputs", [])
        if (o.get("output_type") == "stream" and o.get("name") == "stderr") or o.get("output_type") == "error"
    )
    if not stderr.strip() and reply_content:
        tb = reply_content.get("traceback") or []
        stderr = "\n".join(tb) or f"{reply_content.get('ename', '')}: {reply_content.get('evalue', '')}"
    stderr = _strip_ansi(stderr).rstrip()
    lines = [
        f"cell {index} (code cell {code_number}) {what}",
        "  source:",
        head,
    ]
    if stderr:
        lines += ["  stderr:", "\n".join("    " + line for line in stderr.splitlines()[-60:])]
    return "\n".join(lines)


def _kill_kernel(client: NotebookClient) -> None:
    """Shut the kernel down, and make sure its whole process group is gone."""
    km = client.km
    if km is None:
        return
    pid = pgid = None
    provisioner = getattr(km, "provisioner", None)
    if provisioner is not None:
        pid, pgid = getattr(provisioner, "pid", None), getattr(provisioner, "pgid", None)
    try:
        client._cleanup_kernel()  # graceful shutdown request, then kill after a grace period
    except BaseException as e:  # noqa: BLE001 - cleanup must not raise
        print(f"  (kernel cleanup: {type(e).__name__}: {e})", file=sys.stderr)
        try:
            km.shutdown_kernel(now=True)
        except BaseException:
            pass
    for target, killer in ((pgid, os.killpg), (pid, os.kill)):
        if target:
            try:
                killer(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass


def _start_kernel(nb, nb_path: Path, args, env: dict) -> tuple[NotebookClient, float]:
    """Start a tslab kernel for this notebook; retry when the start hangs. Returns the client and start time."""
    last_error: BaseException | None = None
    cwd = Path(args.cwd).resolve() if args.cwd else nb_path.parent
    for attempt in range(1, args.start_attempts + 1):
        client = NotebookClient(
            nb,
            kernel_name=KERNEL_NAME,
            timeout=max(1, math.ceil(args.timeout)),
            startup_timeout=max(1, math.ceil(args.startup_timeout)),
            resources={"metadata": {"path": str(cwd)}},
            record_timing=False,
            shutdown_kernel="graceful",
        )
        t0 = time.monotonic()
        try:
            client.km = client.create_kernel_manager()
            start_kw = {"cwd": str(cwd), "env": env}
            if sys.platform.startswith("linux"):
                start_kw["preexec_fn"] = _die_with_parent
            client.start_new_kernel(**start_kw)
            client.start_new_kernel_client()  # waits for kernel_info; cleans up itself on failure
            return client, time.monotonic() - t0
        except NoSuchKernel:
            raise NotebookFailure(
                f"no Jupyter kernel named '{KERNEL_NAME}': expected {REPO / 'jupyter/kernels/tslab/kernel.json'} "
                f"(JUPYTER_PATH={os.environ.get('JUPYTER_PATH')})"
            )
        except Interrupted:
            _kill_kernel(client)
            raise
        except Exception as e:  # noqa: BLE001
            last_error = e
            _kill_kernel(client)
            print(
                f"  kernel start attempt {attempt}/{args.start_attempts} failed after "
                f"{time.monotonic() - t0:.1f} s: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
    raise NotebookFailure(f"the {KERNEL_NAME} kernel did not start ({args.start_attempts} attempts): {last_error}")


def run_notebook(nb_path: Path, args, env: dict) -> None:
    nb = nbformat.read(str(nb_path), as_version=4)
    ks = nb.metadata.get("kernelspec", {}).get("name")
    if ks and ks != KERNEL_NAME:
        raise NotebookFailure(f"notebook kernelspec is '{ks}', expected '{KERNEL_NAME}'")

    t_start = time.monotonic()
    client, start_s = _start_kernel(nb, nb_path, args, env)
    replies: dict[int, dict] = {}
    client.on_cell_executed = lambda cell, cell_index, execute_reply: replies.__setitem__(
        cell_index, execute_reply or {}
    )
    failure: str | None = None
    try:
        info = client.wait_for_reply(client.kc.kernel_info())
        if info and "language_info" in info.get("content", {}):
            nb.metadata["language_info"] = info["content"]["language_info"]
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            t_cell = time.monotonic()
            try:
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except CellTimeoutError:
                failure = _cell_report(nb, index, f"timed out after {args.timeout} s", None)
                break
            except DeadKernelError:
                failure = _cell_report(nb, index, "killed the kernel (it died while running this cell)", None)
                break
            except CellExecutionError:
                reply = replies.get(index, {}).get("content", {})
                failure = _cell_report(nb, index, "failed (reply status: error)", reply)
                break
            reply = replies.get(index, {}).get("content", {})
            status = reply.get("status")
            if status != "ok":
                failure = _cell_report(nb, index, f"failed (reply status: {status})", reply)
                break
            if args.verbose:
                out = "".join(_text_of(o) for o in cell.get("outputs", []))
                print(f"  cell {index}: {time.monotonic() - t_cell:.2f} s")
                if out.strip():
                    print("\n".join("    | " + line for line in _strip_ansi(out).rstrip().splitlines()))
    finally:
        _kill_kernel(client)
        if failure is None:
            # How this run went, for scripts/figures.ts --store (the notebooks' stored outputs record it).
            nb.metadata["execution"] = {
                "mode": "quick" if args.quick else "full",
                "seconds": round(time.monotonic() - t_start, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        if args.out:
            out_dir = Path(args.out)
            out_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(out_dir / nb_path.name))
    wall = time.monotonic() - t_start
    if failure:
        raise NotebookFailure(f"{failure}\n  ({wall:.1f} s, kernel start {start_s:.1f} s)")
    print(f"ok    {nb_path}  {wall:.1f} s (kernel start {start_s:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "notebooks", nargs="*", help=".ipynb files to execute, in order (default: every notebooks/*.ipynb)"
    )
    parser.add_argument("--quick", action="store_true", help="set COURSE_QUICK=1 for the kernel")
    parser.add_argument("--timeout", type=float, default=600, help="per-cell timeout in seconds (default 600)")
    parser.add_argument("--out", metavar="DIR", help="write executed notebooks (with outputs) to DIR")
    parser.add_argument(
        "--cwd", metavar="DIR", help="run kernels in DIR instead of each notebook's folder (modules resolve from there)"
    )
    parser.add_argument("--startup-timeout", type=float, default=30, help="seconds to wait for a kernel start")
    parser.add_argument("--start-attempts", type=int, default=3, help="kernel start attempts (default 3)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print each cell's time and output")
    args = parser.parse_args(argv)
    if not args.notebooks:
        args.notebooks = [str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)
                          for p in sorted((REPO / "notebooks").glob("*.ipynb"))]
        if not args.notebooks:
            print(f"run-notebooks: no notebooks in {REPO / 'notebooks'}", file=sys.stderr)
            return 2

    env = dict(os.environ)
    if args.quick:
        env["COURSE_QUICK"] = "1"
    env.pop("RUN_NOTEBOOKS_REEXEC", None)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _on_signal)

    failed: list[str] = []
    for name in args.notebooks:
        nb_path = Path(name).resolve()
        if not nb_path.is_file():
            print(f"FAIL  {name}: no such file", flush=True)
            failed.append(name)
            continue
        t0 = time.monotonic()
        try:
            run_notebook(nb_path, args, env)
        except NotebookFailure as e:
            print(f"FAIL  {name}: {e.message}", flush=True)
            failed.append(name)
        except Interrupted as e:
            print(f"\nrun-notebooks: interrupted ({e}) during {name} after {time.monotonic() - t0:.1f} s", flush=True)
            return 130
    if failed:
        print(f"{len(failed)} of {len(args.notebooks)} notebook(s) failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
