"""The API reference site (`mkdocs.yml`) builds in strict mode, so that a
broken cross-reference or docstring fails the suite, and gives every
package of keras_cbm a page with an entry for every name of its
`__all__`."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytest.importorskip(
    "mkdocstrings_handlers.python",
    reason="the site needs mkdocs and mkdocstrings[python] "
    "(`pip install -e .[test]`)",
)
griffe = pytest.importorskip("griffe")
ENTRY = re.compile(r'id="(keras_cbm\.[\w.]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", site],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return site


def packages():
    """Every package of keras_cbm, read statically (nothing imported)."""
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    found = [loader.load("keras_cbm")]
    for package in found:
        found += [
            module
            for module in package.modules.values()
            if module.filepath.name == "__init__.py"
        ]
    return found[1:]


def test_every_package_is_found():
    names = {package.path for package in packages()}
    assert {"keras_cbm.layers", "keras_cbm.data.video"} <= names


@pytest.mark.parametrize("package", packages(), ids=lambda p: p.path)
def test_every_exported_name_has_an_entry(site, package):
    # A package's own page, or a subpackage's (`keras_cbm.data` exports
    # the datasets of `keras_cbm.data.video`, documented there).
    page = site / "reference" / package.path.removeprefix("keras_cbm.")
    assert page.is_dir(), f"no reference page for {package.path}"
    entries = {
        entry
        for html in (site / "reference").glob("*/index.html")
        for entry in ENTRY.findall(html.read_text())
    }
    exports = package.exports or []
    assert exports, package.path
    missing = [
        name
        for name in exports
        if not any(
            entry.startswith(f"{package.path}.") and entry.endswith(f".{name}")
            for entry in entries
        )
    ]
    assert missing == [], package.path
