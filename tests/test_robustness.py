"""The checker answers any input with its own diagnostics: never an exception, always inside the file."""
from hypothesis import given, settings, strategies as st

from dltspec import diagnose

from .conftest import DIGITS

TOKENS = ["dataset", "digits", "mnist", "classifier", "mlp", "logistic", "loss", "nll", "regularizer", "l2",
          "optimizer", "sgd", "stopping", "patience", "save", "{", "}", "[", "]", "=", ",", ";", "\n", "#x\n",
          "learning_rate", "batch_size", "hidden", "n_epochs", "seed", "1", "-3", "0.5", "1e309", "true",
          '"p"', '"', "é", "\t", "99999999999999999999999"]


def assert_located(text, diagnostics):
    n_lines = text.count("\n") + 1
    for d in diagnostics:
        assert d.code.startswith("DLT") and d.message
        assert 1 <= d.span.line <= n_lines, (text, d)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_token_soup_never_crashes(text):
    spec, diagnostics = diagnose(text, "soup.dlt")
    assert spec is not None or any(d.is_error for d in diagnostics)
    assert_located(text, diagnostics)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(DIGITS)), st.integers(0, 20), st.text(max_size=8))
def test_mutated_spec_never_crashes(start, length, insert):
    text = DIGITS[:start] + insert + DIGITS[start + length:]
    spec, diagnostics = diagnose(text, "mutant.dlt")
    assert spec is not None or any(d.is_error for d in diagnostics)
    assert_located(text, diagnostics)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_random_overrides_never_crash(override):
    spec, diagnostics = diagnose(DIGITS, "spec.dlt", overrides=[override])
    for d in diagnostics:
        assert d.span.file in ("spec.dlt", "--set")


def test_specs_are_data_nothing_in_them_is_imported_or_evaluated(tmp_path):
    """Unlike pylearn2's YAML (`!obj:` tags), a spec cannot name a Python object or run an expression:
    such text is a syntax error or a plain string that must match the schema's words."""
    marker = tmp_path / "pwned"
    attempts = [
        f'classifier !obj:os.system {{ command = "touch {marker}" }}',
        f'classifier "__import__(\'os\').system(\'touch {marker}\')"',
        f'dataset pickle {{ path = "$(touch {marker})" }}',
        f'optimizer sgd {{ learning_rate = __import__("os").system("touch {marker}") batch_size = 20 }}',
        'loss !!python/object/apply:os.system ["id"]',
    ]
    for attempt in attempts:
        text = DIGITS + attempt + "\n"
        spec, diagnostics = diagnose(text, "evil.dlt")
        assert spec is None and any(d.is_error for d in diagnostics), attempt
        assert_located(text, diagnostics)
    assert not marker.exists()


# -- the CLI's net for the unexpected (exit 70) catches none of the hostile inputs it was built beside --------

def hostile_cases(tmp_path):
    """``(name, argv)``: the kinds of the adversarial pass (issue 18), each a command that must fail with its
    own located error, not through the net."""
    import gzip
    import os
    import struct

    import numpy as np

    from dltspec.training.rundir import RunDir

    def npz(name: str, **arrays) -> str:
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        spec = tmp_path / f"{name}.dlt"
        spec.write_text(f'dataset npz {{ path = "{path}"  valid_size = 2 }}\nclassifier logistic {{}}\nloss nll\n'
                        "optimizer sgd { learning_rate = 0.1  batch_size = 2 }\nstopping patience {}\n")
        return str(spec)

    x, y = np.random.RandomState(0).rand(8, 3), np.arange(8) % 2
    cases = [
        ("uint64 label above 2**63", ["check", "--data", npz("u64", x_train=x, y_train=np.full(8, 2**63 + 5, np.uint64),
                                                            x_test=x, y_test=y)]),
        ("float64 beyond float32", ["check", "--data", npz("f64", x_train=x * 1e300, y_train=y, x_test=x, y_test=y)]),
        ("x and y of different lengths", ["check", "--data", npz("len", x_train=x, y_train=y[:5], x_test=x,
                                                                  y_test=y)]),
        ("0-d arrays", ["check", "--data", npz("zero", x_train=np.float64(1), y_train=np.int64(1), x_test=x,
                                               y_test=y)]),
        ("feature counts differ across splits", ["check", "--data", npz("feat", x_train=x, y_train=y,
                                                                         x_test=x[:, :2], y_test=y)]),
        ("a label of 10**9", ["check", "--data", npz("big", x_train=x, y_train=np.full(8, 10**9), x_test=x,
                                                     y_test=y)]),
    ]
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes((tmp_path / "u64.npz").read_bytes()[:200])
    cases.append(("a truncated npz", ["check", "--data", str(tmp_path / "u64.dlt").replace("u64.dlt", "cut.dlt")]))
    (tmp_path / "cut.dlt").write_text((tmp_path / "u64.dlt").read_text().replace("u64.npz", "cut.npz"))
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (idx_dir / f"{name}.gz").write_bytes(gzip.compress(header + b"\0" * 64))
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (idx_dir / f"{name}.gz").write_bytes(gzip.compress(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 8) + b"\1" * 8))
    (tmp_path / "idx.dlt").write_text(f'dataset idx {{ path = "{idx_dir}" }}\nclassifier logistic {{}}\nloss nll\n'
                                      "optimizer sgd { learning_rate = 0.1  batch_size = 2 }\nstopping patience {}\n")
    cases.append(("an IDX header that overflows int64", ["check", "--data", str(tmp_path / "idx.dlt")]))
    (tmp_path / "huge.dlt").write_text("dataset digits {}\nclassifier mlp { hidden = [100000000] }\nloss nll\n"
                                       "optimizer sgd { learning_rate = 0.1  batch_size = 20 }\nstopping patience {}\n")
    cases.append(("7.5 billion parameters", ["check", str(tmp_path / "huge.dlt")]))
    cases.append(("/dev/zero as a spec", ["check", "/dev/zero"]))
    os.mkfifo(tmp_path / "fifo.dlt")
    cases.append(("a FIFO as a spec", ["check", str(tmp_path / "fifo.dlt")]))
    run = RunDir.create("r", tmp_path / "run")
    run.write_checkpoint({"spec_sha256": "x", "params": 3})
    (tmp_path / "digits.dlt").write_text("dataset digits {}\nclassifier logistic {}\nloss nll\n"
                                         "optimizer sgd { learning_rate = 0.1  batch_size = 20 }\nstopping patience {}\n")
    (tmp_path / "run" / "spec.dlt").write_text((tmp_path / "digits.dlt").read_text())
    (tmp_path / "run" / "run.json").write_text("{}")
    cases.append(("a checkpoint with the wrong keys", ["run", str(tmp_path / "digits.dlt"), "--resume",
                                                       str(tmp_path / "run")]))
    (tmp_path / "run" / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n{"epoch": 2}\n')
    cases.append(("a damaged metrics.jsonl", ["plot", str(tmp_path / "run")]))
    return cases


def test_the_net_for_the_unexpected_catches_none_of_the_hostile_inputs(tmp_path, capsys):
    from dltspec.cli import EXIT_INTERNAL, main

    caught = []
    for name, argv in hostile_cases(tmp_path):
        code = main(argv)
        err = capsys.readouterr().err
        if code == EXIT_INTERNAL or "internal error" in err or code == 0:
            caught.append(f"{name}: exit {code}, {err.strip()[:200]}")
        assert err.strip(), name  # each says what is wrong
    assert caught == []
