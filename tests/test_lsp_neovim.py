"""A real editor as the client: headless Neovim opens a broken and a clean spec, attaches
``dltspec lsp`` and reports the diagnostics it shows. It needs ``nvim`` on the PATH (``.ci/run``
installs Debian's ``neovim``; ``apt install neovim`` here) and fails without it, never skips;
DLTSPEC_NVIM picks another binary."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import DIGITS, ROOT
from .test_lsp import BROKEN, SYNTAX

SCRIPT = ROOT / "tests" / "editors" / "nvim_diagnostics.lua"


def nvim() -> str:
    found = os.environ.get("DLTSPEC_NVIM") or shutil.which("nvim")
    if found is None:
        pytest.fail("nvim not found: install Neovim (apt install neovim; .ci/run does) or set DLTSPEC_NVIM")
    return found


def test_neovim_shows_the_servers_diagnostics(tmp_path):
    binary = nvim()
    folder = tmp_path.resolve()
    specs = {"broken.dlt": BROKEN, "syntax.dlt": SYNTAX, "clean.dlt": DIGITS}
    for name, text in specs.items():
        (folder / name).write_text(text, encoding="utf-8")
    out = folder / "diagnostics.json"
    env = dict(os.environ, DLT_CMD=json.dumps([sys.executable, "-m", "dltspec", "lsp"]),
               DLT_FILES=json.dumps([str(folder / name) for name in specs]), DLT_OUT=str(out),
               XDG_STATE_HOME=str(folder / "state"), XDG_DATA_HOME=str(folder / "data"))
    done = subprocess.run([binary, "--headless", "--clean", "-n", "-c", f"luafile {SCRIPT}"], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.is_file(), f"nvim exited {done.returncode} without a report:\n{done.stdout}\n{done.stderr}"
    report = json.loads(out.read_text(encoding="utf-8"))
    files = {name: report["files"][str(folder / name)] for name in specs}
    assert all(f["published"] for f in files.values()), report
    print("nvim", report["nvim"])

    # Neovim turns the server's UTF-16 (or negotiated) characters into byte columns of the line:
    # n_train's 0 follows "é" (2 bytes) and "😀" (4 bytes), so it is byte 57, code point 53.
    [broken] = files["broken.dlt"]["diagnostics"]
    assert (broken["lnum"], broken["col"], broken["end_lnum"], broken["end_col"]) == (0, 57, 0, 58), report
    assert broken["code"] == "DLT203" and broken["source"] == "dltspec" and broken["severity"] == 1
    assert broken["message"] == "n_train must be >= 1, got 0"
    [syntax] = files["syntax.dlt"]["diagnostics"]
    assert (syntax["lnum"], syntax["col"], syntax["code"]) == (2, 27, "DLT101"), report
    assert files["clean.dlt"]["diagnostics"] == [], report
