"""Every name of keras_cbm that README.md and docs/ show imports from where
they show it: `keras_cbm.data.video_clips_from_directory` and
`from keras_cbm.training import FrameTargets` alike, in code blocks (run or
not) and in the text."""

import importlib
import pathlib
import re

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOTTED = re.compile(r"\bkeras_cbm(?:\.[A-Za-z_]\w*)+")
FROM_IMPORT = re.compile(
    r"\bfrom (keras_cbm[\w.]*) import (\([^)]*\)|[\w ,]+)", re.S
)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="imports TensorFlow's subpackages too",
)


def shown_names(text):
    """The dotted paths of the keras_cbm names that `text` shows."""
    names = set(DOTTED.findall(text))
    for module, imported in FROM_IMPORT.findall(text):
        for name in imported.strip("()").split(","):
            if name.split():
                names.add(f"{module}.{name.split()[0]}")
    return names


def resolve(dotted):
    """The object at `dotted`, read as an import of its longest module
    prefix and attributes after it."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError as error:
            if not ".".join(parts[:split]).startswith(error.name):
                raise
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(dotted)


def test_shown_names_are_found():
    text = (
        "`keras_cbm.data.video_clips_from_directory(d)` and\n"
        "```python\nfrom keras_cbm.layers import (\n    CBM,\n    ConvCBM2D,\n)"
        "\nfrom keras_cbm.training import FrameTargets  # why\n```\n"
        "`pip install keras_cbm[video]`, keras_cbm/data/video/"
    )
    assert shown_names(text) == {
        "keras_cbm.data.video_clips_from_directory",
        "keras_cbm.layers",
        "keras_cbm.layers.CBM",
        "keras_cbm.layers.ConvCBM2D",
        "keras_cbm.training",
        "keras_cbm.training.FrameTargets",
    }


def test_a_name_that_moved_is_caught():
    with pytest.raises(AttributeError):
        resolve("keras_cbm.training.video_clips_from_directory")
    with pytest.raises(AttributeError):
        resolve("keras_cbm.data.frame_resize")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_shown_name_imports_from_where_shown(page):
    for dotted in sorted(shown_names(page.read_text())):
        resolve(dotted)
