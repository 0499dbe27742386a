"""The pre-commit hooks of .pre-commit-hooks.yaml, run by `pre-commit try-repo` on a scratch repository.

try-repo clones this checkout (HEAD, plus staged and modified tracked files: a new file must be
`git add`ed to be seen), installs it into a fresh environment of its own (language: python) and runs
the hook on the files named. Each call builds a new environment in a temporary store; pre-commit-uv
(in the test extra) has uv build it, a few seconds where pip takes about a minute.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT, SPECS

BROKEN = """\
dataset digits { seed = 0 }
classifier logistic { n_out = 10 }
loss nll
optimizer sgd { learning_rate = -0.1  batch_size = 20 }
stopping patience { n_epochs = 3 }
"""
UNTIDY = "dataset digits{seed=0}\nclassifier logistic { n_out = 10 }\nloss nll\n" \
         "optimizer sgd { learning_rate = 0.1;batch_size = 20 }\nstopping patience { n_epochs = 3 }\n"


@pytest.fixture
def scratch(tmp_path):
    """A git repository holding a good spec, a broken one and one out of the canonical layout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("pre-commit try-repo needs git and a git checkout of dltspec")
    repo = tmp_path / "scratch"
    repo.mkdir()
    shutil.copy(SPECS / "digits.dlt", repo / "good.dlt")
    (repo / "broken.dlt").write_text(BROKEN, encoding="utf-8")
    (repo / "untidy.dlt").write_text(UNTIDY, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    return repo


def try_repo(repo, tmp_path, *args):
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), FORCE_PRE_COMMIT_UV_PATCH="1",
               PRE_COMMIT_COLOR="never", NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def test_the_hooks_pass_on_a_good_spec(scratch, tmp_path):
    code, output = try_repo(scratch, tmp_path, "--files", "good.dlt")
    assert code == 0, output
    assert "dltspec check" in output and "dltspec fmt" in output
    assert "Failed" not in output


def test_the_hooks_fail_on_a_broken_spec_and_rewrite_an_untidy_one(scratch, tmp_path):
    code, output = try_repo(scratch, tmp_path, "--files", "broken.dlt", "untidy.dlt")
    assert code == 1, output
    check = output.split("dltspec check", 1)[1].split("dltspec fmt", 1)[0]
    assert "Failed" in check and "- hook id: dltspec-check" in check
    assert "broken.dlt:4:33: error: learning_rate must be > 0, got -0.1 [DLT203]" in check
    assert "optimizer sgd { learning_rate = -0.1  batch_size = 20 }" in check
    assert "untidy.dlt:" not in check  # laid out badly, but a valid spec
    fmt = output.split("dltspec fmt", 1)[1]
    assert "Failed" in fmt and "files were modified by this hook" in fmt
    assert (scratch / "untidy.dlt").read_text(encoding="utf-8").splitlines()[:1] == ["dataset digits { seed = 0 }"]
    assert (scratch / "broken.dlt").read_text(encoding="utf-8") == BROKEN  # already canonical: left alone
