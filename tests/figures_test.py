"""Every figure README and docs/ quote from a results file is the one in it.

A quoted figure is followed by a marker naming its results file (in
`studies/results/`, without `.json`) and its place among the file's
`values`, dot-separated:

    0.855<!-- results defaults table.tanh-add.main_job.mean -->

The figure must be the value rounded to as many decimals as it is quoted
with (a `%` after it: the value in percent). Editing either side makes this
test fail.
"""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "studies" / "results"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUOTE = re.compile(
    r"(?P<figure>-?\d+(?:\.\d+)?)(?P<unit>%?)[^\s<]*"
    r"<!-- results (?P<file>[\w.-]+) (?P<key>\S+) -->"
)


def look_up(values, key):
    for part in key.split("."):
        values = values[int(part)] if isinstance(values, list) else values[part]
    return values


def stale_quotes(text, results_folder):
    """`(quote, expected)` of every quote in `text` that its results file
    does not give."""
    stale = []
    for quote in QUOTE.finditer(text):
        path = results_folder / f"{quote['file']}.json"
        with open(path) as file:
            value = look_up(json.load(file)["values"], quote["key"])
        if quote["unit"] == "%":
            value *= 100
        figure = quote["figure"]
        decimals = len(figure.split(".")[1]) if "." in figure else 0
        expected = f"{value:.{decimals}f}"
        if expected != figure:
            stale.append((quote.group(0), expected))
    return stale


def test_every_quoted_figure_is_its_results_files():
    quotes = 0
    for page in PAGES:
        text = page.read_text()
        quotes += len(QUOTE.findall(text))
        assert stale_quotes(text, RESULTS) == [], page.name
    assert quotes > 0, "no figure is quoted from a results file"


def test_every_marker_is_read():
    # A marker the pattern misses (a typo, a space before it) checks
    # nothing: each one must be matched.
    for page in PAGES:
        text = page.read_text()
        assert text.count("<!-- results ") == len(QUOTE.findall(text)), (
            page.name
        )


@pytest.fixture
def results_folder(tmp_path):
    values = {"runs": [{"accuracy": 0.98765}], "share": 0.25}
    (tmp_path / "study.json").write_text(json.dumps({"values": values}))
    return tmp_path


def test_an_edited_figure_is_caught(results_folder):
    page = (
        "Accuracy 0.988<!-- results study runs.0.accuracy --> and "
        "25%<!-- results study share -->; 1.2× here is not quoted."
    )
    assert stale_quotes(page, results_folder) == []
    edited = page.replace("0.988", "0.990")
    assert stale_quotes(edited, results_folder) == [
        ("0.990<!-- results study runs.0.accuracy -->", "0.988")
    ]
    assert stale_quotes(page.replace("25%", "26%"), results_folder) == [
        ("26%<!-- results study share -->", "25")
    ]
    # Fewer decimals quote the rounded value.
    assert stale_quotes(page.replace("0.988", "0.99"), results_folder) == []


def test_an_edited_results_file_is_caught(results_folder):
    page = "Accuracy 0.988<!-- results study runs.0.accuracy -->"
    path = results_folder / "study.json"
    path.write_text(json.dumps({"values": {"runs": [{"accuracy": 0.5}]}}))
    assert stale_quotes(page, results_folder) == [
        ("0.988<!-- results study runs.0.accuracy -->", "0.500")
    ]


def unquoted_headline_rows(readme):
    """The rows of README's "Headline figures" table whose figures name no
    results file."""
    section = readme.split("## Headline figures", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row for row in rows[1:] if "<!-- results " not in row]


def test_every_headline_figure_comes_from_a_results_file():
    assert unquoted_headline_rows((ROOT / "README.md").read_text()) == []


def test_a_headline_row_without_a_results_file_is_caught():
    readme = (
        "## Headline figures\n\n| what | figure |\n|---|---|\n"
        "| quoted | 0.99<!-- results study share --> |\n| typed | 0.98 |\n"
        "\n### Measured earlier\n| other | 1 |\n"
    )
    assert unquoted_headline_rows(readme) == ["| typed | 0.98 |"]
