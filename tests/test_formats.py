"""Machine-readable output of ``dltspec check``: SARIF 2.1.0 against the schema, JSON, GitHub."""
import json
from pathlib import Path

import jsonschema
import pytest

from dltspec.cli import main
from dltspec.diagnostics import CODES

from .conftest import SPECS

#: The SARIF 2.1.0 JSON schema as the SARIF SDK ships it (tests/data/README.md says where from).
SARIF_SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0.json").read_text())
BAD = "loss nll\noptimizer sgd { learning_rate = -1  batch_size = 2 }\n"


def sarif_of(capsys, *args) -> tuple[int, dict]:
    status = main(["check", "--format", "sarif", *args])
    log = json.loads(capsys.readouterr().out)
    validator = jsonschema.Draft202012Validator(SARIF_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(log), key=str)
    assert errors == [], [e.message for e in errors]
    return status, log


def test_sarif_log_validates_and_locates_each_problem(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "bad é.dlt").write_text("# é\n" + BAD, encoding="utf-8")
    status, log = sarif_of(capsys, ".")
    assert status == 1 and log["version"] == "2.1.0"
    (run,) = log["runs"]
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.as_uri() + "/"
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CODES) and rules[3]["shortDescription"]["text"] == CODES[rules[3]["id"]]
    by_code = {r["ruleId"]: r for r in run["results"]}
    result = by_code["DLT203"]
    assert rules[result["ruleIndex"]]["id"] == "DLT203" and result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "sub%20dir/bad%20%C3%A9.dlt", "uriBaseId": "%SRCROOT%"}
    assert location["region"] == {"startLine": 3, "startColumn": 33, "endLine": 3, "endColumn": 35}
    assert result["message"]["text"] == "learning_rate must be > 0, got -1"


def test_sarif_of_a_clean_spec_has_no_results_and_exit_0(capsys):
    status, log = sarif_of(capsys, str(SPECS / "digits.dlt"))
    assert status == 0 and log["runs"][0]["results"] == []


def test_sarif_warnings_are_level_warning(tmp_path, capsys):
    spec = tmp_path / "w.dlt"
    spec.write_text((SPECS / "digits.dlt").read_text() + "regularizer l2 { weight = 0.1 }\nregularizer l2 { weight = 0.2 }\n")
    status, log = sarif_of(capsys, str(spec))
    assert status == 0
    assert [(r["ruleId"], r["level"]) for r in log["runs"][0]["results"]] == [("DLT305", "warning")]


@pytest.mark.parametrize("fmt", ["json", "github", "sarif"])
def test_every_format_reports_every_syntax_error_of_every_file(tmp_path, capsys, fmt):
    (tmp_path / "a.dlt").write_text("loss nll\noptimizer sgd { learning_rate = = 1 }\nregularizer l2 { weight 2 }\n")
    (tmp_path / "b.dlt").write_text("dataset digits {\nstopping patience { n_epochs = 3 }\n")
    assert main(["check", "--format", fmt, str(tmp_path)]) == 1
    out = capsys.readouterr().out
    if fmt == "json":
        places = [(Path(d["file"]).name, d["start"]["line"]) for d in json.loads(out) if d["code"] == "DLT101"]
    elif fmt == "sarif":
        places = [(Path(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]).name,
                   r["locations"][0]["physicalLocation"]["region"]["startLine"])
                  for r in json.loads(out)["runs"][0]["results"] if r["ruleId"] == "DLT101"]
    else:
        places = [(Path(line.split("file=")[1].split(",")[0]).name, int(line.split("line=")[1].split(",")[0]))
                  for line in out.splitlines() if "title=DLT101" in line]
    assert places == [("a.dlt", 2), ("a.dlt", 3), ("b.dlt", 1)]


def test_sarif_gives_an_absolute_uri_without_a_base_and_a_relative_one_with_it(tmp_path, capsys, monkeypatch):
    """SARIF 2.1.0 section 3.4.4: uriBaseId goes only with a relative reference."""
    inside, outside = tmp_path / "work", tmp_path / "elsewhere"
    inside.mkdir(), outside.mkdir()
    for folder in (inside, outside):
        (folder / "bad.dlt").write_text("loss nll\n")
    monkeypatch.chdir(inside)
    assert main(["check", "--format", "sarif", "bad.dlt", str(outside / "bad.dlt")]) == 1
    results = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    locations = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in results]
    assert {"uri": "bad.dlt", "uriBaseId": "%SRCROOT%"} in locations
    assert {"uri": (outside / "bad.dlt").as_uri()} in locations


def test_a_file_name_with_a_newline_stays_on_one_diagnostic_line(tmp_path, capsys):
    path = tmp_path / "two\nlines.dlt"
    path.write_text("loss nll\n")
    assert main(["check", str(path)]) == 1
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"{tmp_path}/two\\nlines.dlt:1:1: error: ") and first.endswith("[DLT205]")
