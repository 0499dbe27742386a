import json
import subprocess
import sys

import pytest

from dltspec.cli import main

from .conftest import ROOT, SPECS


def test_check_accepts_every_shipped_spec(capsys):
    assert main(["check", *map(str, sorted(SPECS.glob("*.dlt")))]) == 0
    assert capsys.readouterr().err == ""


def test_check_does_not_import_pytensor():
    code = ("import sys; from dltspec.cli import main; "
            f"status = main(['check', {str(SPECS / 'mlp.dlt')!r}]); "
            "assert 'pytensor' not in sys.modules, 'pytensor imported'; "
            "assert 'numpy' not in sys.modules, 'numpy imported'; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_schema_command_prints_the_draft07_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert set(schema["properties"]) == {"dataset", "classifier", "layer", "loss", "regularizer", "optimizer", "schedule",
                                         "pretrain", "stopping", "save", "run", "sweep"}


def test_usage_errors_exit_2(capsys):
    try:
        main(["run"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "usage: dltspec run" in capsys.readouterr().err


def test_unreadable_spec_is_a_located_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.dlt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'missing.dlt'}:1:1: error: cannot read spec: No such file or directory")


def test_check_reads_stdin(monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("loss nll\n"))
    assert main(["check", "-"]) == 1
    assert "<stdin>:1:1: error: missing 'dataset' block" in capsys.readouterr().err


def test_console_script_and_module_agree():
    done = subprocess.run([sys.executable, "-m", "dltspec", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("dltspec ")


def test_unwritable_save_path_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    assert main(["run", str(SPECS / "digits.dlt"), "--save", "a-file/x.pkl"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("--save:1:1: error: cannot write a-file/x.pkl: a-file is not a directory [DLT503]")
    assert main(["run", str(SPECS / "digits.dlt"), "--save", "missing/x.pkl"]) == 1
    assert "directory missing does not exist" in capsys.readouterr().err


def test_save_block_path_error_points_at_the_spec(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = (SPECS / "digits.dlt").read_text().replace('save "digits.best.pkl"', 'save "nowhere/d.pkl"')
    (tmp_path / "d.dlt").write_text(spec)
    assert main(["run", "d.dlt"]) == 1
    assert "d.dlt:13:6: error: cannot write nowhere/d.pkl: directory nowhere does not exist" in capsys.readouterr().err


WARN = (SPECS / "digits.dlt").read_text() + "regularizer l2 { weight = 0.1 }\nregularizer l2 { weight = 0.2 }\n"


def test_check_walks_directories_and_reports_json(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.dlt").write_text("loss nll\noptimizer sgd { learning_rate = -1  batch_size = 2 }\n")
    (tmp_path / "ok.dlt").write_text((SPECS / "digits.dlt").read_text())
    assert main(["check", "--format", "json", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {d["file"] for d in report} == {str(tmp_path / "sub" / "bad.dlt")}
    bad = [d for d in report if d["code"] == "DLT203"][0]
    assert bad["start"] == {"line": 2, "column": 33} and bad["end"] == {"line": 2, "column": 35}
    assert bad["severity"] == "error" and bad["title"] == "value out of range"


def test_check_missing_path_is_a_usage_error(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_warnings_as_errors_and_github_format(tmp_path, capsys):
    (tmp_path / "w,x.dlt").write_text(WARN)
    assert main(["check", str(tmp_path / "w,x.dlt")]) == 0
    capsys.readouterr()
    assert main(["check", "--warnings-as-errors", "--format", "github", str(tmp_path / "w,x.dlt")]) == 1
    line = capsys.readouterr().out.strip()
    path = str(tmp_path / "w,x.dlt").replace(":", "%3A").replace(",", "%2C")
    assert line.startswith(f"::warning file={path},line=15,endLine=15,col=1,endColumn=15,title=DLT305::")


DIGITS_SPEC = (SPECS / "digits.dlt").read_text()
BAD_INPUTS = {
    "empty": (b"", 1, "missing 'dataset' block"),
    "binary garbage": (bytes(range(256)) * 40, 1, "cannot read spec"),
    "NUL and control characters": (b"loss nll\x00\x01\n", 1, "unexpected character '\\x00'"),
    "ten megabytes": (b"# " + b"x" * 10_000_000, 1, "spec is too large: 10,000,002 bytes"),
    "deeply nested list": (("classifier mlp { hidden = " + "[" * 20000 + "]" * 20000 + " }").encode(), 1,
                           "nested too deeply"),
    "unterminated string": (b'save "digits.best.pkl\nloss nll\n', 1, "unterminated string"),
    "not UTF-8": ("save \"caf\u00e9\"".encode("latin-1"), 1, "cannot read spec"),
    "tabs and CRLF": (DIGITS_SPEC.replace("\n", "\r\n").replace("    ", "\t").encode(), 0, ""),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gets_located_diagnostics_never_a_traceback(tmp_path, capsys, name):
    data, status, fragment = BAD_INPUTS[name]
    spec = tmp_path / "in.dlt"
    spec.write_bytes(data)
    assert main(["check", str(spec)]) == status
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    first_lines = [line for line in err.splitlines() if not line.startswith("  ")]
    assert (first_lines != []) == (status == 1)
    assert all(line.startswith(f"{spec}:") and ("[DLT1" in line or "[DLT2" in line) for line in first_lines)


def test_a_ten_megabyte_spec_is_refused_by_the_whole_program(tmp_path):
    spec = tmp_path / "big.dlt"
    spec.write_bytes(b"loss nll\n" * 1_200_000)
    done = subprocess.run([sys.executable, "-m", "dltspec", "check", str(spec)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (f"{spec}:1:1: error: spec is too large: 10,800,000 bytes; the limit is 100,000 "
                           "characters (specs are small: is this the right file?) [DLT100]\n")


def test_a_closed_pipe_ends_quietly(tmp_path):
    for i in range(3):
        (tmp_path / f"bad{i}.dlt").write_text("loss nll\n")
    proc = subprocess.Popen([sys.executable, "-m", "dltspec", "check", "--format", "json", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head` does once it has what it wants
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and err == b""


def test_a_broken_spec_is_reported_before_jax_is_imported(tmp_path):
    spec = tmp_path / "bad.dlt"
    spec.write_text("loss nll\n")
    code = ("import sys; from dltspec.cli import main; "
            f"status = main(['run', {str(spec)!r}, '--backend', 'jax']); "
            "assert 'jax' not in sys.modules and 'pytensor' not in sys.modules; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "missing 'dataset' block" in done.stderr


def test_a_directory_without_specs_is_a_usage_error(tmp_path, capsys):
    """A mistyped directory in CI must not pass silently."""
    (tmp_path / "notes.txt").write_text("not a spec")
    assert main(["check", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"dltspec check: {tmp_path}: no *.dlt files in this directory\n"
    assert main(["fmt", "--check", str(tmp_path)]) == 2
    assert "dltspec fmt: " in capsys.readouterr().err


def test_an_error_a_command_did_not_print_is_one_line_and_exit_1(monkeypatch, capsys):
    import dltspec.cli
    from dltspec.training.rundir import RunError

    def fails(args):
        raise RunError("the disk went away")

    monkeypatch.setattr(dltspec.cli, "cmd_runs", fails)
    assert main(["runs", "."]) == 1
    captured = capsys.readouterr()
    assert captured.err == "dltspec runs: the disk went away\n" and captured.out == ""


def test_every_error_dltspec_raises_has_one_root():
    from dltspec.backends.devices import DeviceError
    from dltspec.data.fetch import FetchError
    from dltspec.data.idx import IdxError
    from dltspec.data.loaders import DataError
    from dltspec.data.safe_pickle import UnsafePickle
    from dltspec.data.stream import SizeError
    from dltspec.diagnostics import DltspecError, Span, SpecError
    from dltspec.pictures import PictureError
    from dltspec.predict import InputError
    from dltspec.sweeps.orchestrate import SweepInterrupted, SweepStopped
    from dltspec.sweeps.tasks import SweepError
    from dltspec.training.params import ParamsError
    from dltspec.training.rundir import RunError

    for kind in (DeviceError, FetchError, IdxError, DataError, UnsafePickle, SizeError, SpecError, PictureError,
                 InputError, SweepInterrupted, SweepStopped, SweepError, ParamsError, RunError):
        assert issubclass(kind, DltspecError), kind
    where = Span.point("p.pkl")
    [located] = ParamsError("DLT502", "does not fit").as_diagnostics(where)
    assert (located.code, located.message, located.span) == ("DLT502", "does not fit", where)
    [data] = DataError("DLT401", "not found", "path", ("looked in x",)).as_diagnostics(where)
    assert data.notes == ("looked in x",)


def test_an_unexpected_exception_is_one_line_a_crash_file_and_exit_70(tmp_path, capsys, monkeypatch):
    import dltspec.cli as cli

    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "cache"))

    def broken(args):
        raise KeyError("no such thing")

    monkeypatch.setattr(cli, "cmd_check", broken)  # a bug no stage turned into a diagnostic
    assert main(["check", "x.dlt"]) == 70
    err = capsys.readouterr().err
    (crash,) = (tmp_path / "cache" / "crashes").glob("crash-*.txt")
    assert err == (f"dltspec check: internal error (KeyError: 'no such thing'); details in {crash}; please report "
                   "it with that file\n")
    text = crash.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'no such thing'" in text
    assert (crash.stat().st_mode & 0o777) == 0o600


def test_a_device_or_a_pipe_named_as_a_spec_is_refused_and_a_folder_skips_them(tmp_path, capsys):
    import os
    import shutil

    assert main(["check", "/dev/zero"]) == 1  # its size says 0; reading it would never end
    assert "/dev/zero:1:1: error: cannot read spec: not a regular file" in capsys.readouterr().err
    folder = tmp_path / "specs"
    folder.mkdir()
    os.mkfifo(folder / "waits.dlt")  # opening it would block until a writer came
    shutil.copy(SPECS / "mlp.dlt", folder / "ok.dlt")
    assert main(["check", str(folder)]) == 0
    assert main(["check", str(folder / "waits.dlt")]) == 1
    assert "not a regular file" in capsys.readouterr().err


def test_a_crlf_spec_reads_as_it_did(tmp_path, capsys):
    path = tmp_path / "crlf.dlt"
    path.write_bytes((SPECS / "mlp.dlt").read_bytes().replace(b"\n", b"\r\n"))
    assert main(["check", str(path)]) == 0
