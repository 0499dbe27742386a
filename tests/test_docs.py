"""The reference (docs/reference.md) is generated from the schema and must stay in step with it; the README
opens with install, run and test."""
import re

from dltspec.lang.reference import markdown
from dltspec.lang.schema import block_kinds, schema, variants

from .conftest import ROOT


def test_reference_page_matches_the_schema():
    page = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    embedded = re.search(r"<!-- reference:start[^>]*-->\n(.*)<!-- reference:end -->", page, re.S).group(1)
    assert embedded == markdown(), "run: dltspec schema --markdown, and paste it into docs/reference.md"


def test_reference_names_every_key_of_every_kind():
    text = markdown()
    for name in (f"{kind}.{label}" for kind in block_kinds() for label in variants(kind)):
        definition = schema()["definitions"][name]
        assert f"`{name.replace('.', ' ')}`" in text
        for key in definition["properties"]:
            assert key == "kind" or f"| `{key}` |" in text


def test_readme_opens_with_install_run_and_test():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[0:2] for line in block] == [["pip", "install"], ["dltspec", "run"], ["pytest", "#"]]
    assert (ROOT / block[1].split()[2]).is_file()


def test_readme_stays_short_and_links_into_the_site():
    """The guide lives in docs/ (the MkDocs site); the README keeps its first screen and links there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 35_000, "move the new section into a page of docs/ and link it"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f" {page.name}\n" in nav, f"{page.name} is not in mkdocs.yml's nav"
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link


def test_every_diagnostic_code_is_documented():
    from dltspec.diagnostics import CODES

    doc = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    for code, title in CODES.items():
        assert f"### {code} — {title}\n" in doc
        section = doc.split(f"### {code} — {title}\n", 1)[1].split("\n### ", 1)[0]
        assert f"[{code}]" in section, f"{code} has no example message"


def test_each_kinds_example_in_the_reference_is_valid_spec_text():
    """The reference shows every key of every kind in an example block; each reads without a syntax or
    schema error in a spec around it."""
    import dltspec
    from dltspec.lang.reference import example
    from dltspec.lang.schema import block_kinds, schema, variants

    base = {"dataset": "dataset digits { seed = 0 }", "classifier": "classifier logistic { n_out = 10 }",
            "loss": "loss nll", "optimizer": "optimizer sgd { learning_rate = 0.1  batch_size = 20 }",
            "stopping": "stopping patience { n_epochs = 3 }"}
    text = markdown()
    for kind in block_kinds():
        if kind == "sweep":
            continue
        for label in variants(kind):
            definition = schema()["definitions"][f"{kind}.{label}"]
            block = example(kind, label, definition)
            assert f"```\n{block}\n```" in text
            for key in definition["properties"]:
                assert key == "kind" or f" {key} = " in block, (kind, label, key)
            spec_text = "\n".join({**base, kind: block}.values()) + "\n"
            _spec, diagnostics = dltspec.diagnose(spec_text, file="example.dlt")
            assert not [d for d in diagnostics if d.code < "DLT300"], (block, diagnostics)
