"""What the documentation site needs from the pages and docstrings as they
are written (mkdocs.yml loads both parts; no page of the site).

- `on_page_markdown` (an MkDocs hook): a block fenced ```` ```python
  no-run ```` (shown, not run by `tests/docs_test.py`) is a Python block.
- `DoctestBlocks` (a griffe extension): the examples of Keras-style
  docstrings (`>>>` lines under an `Example:` line, not indented) become
  Python console blocks, not Markdown text.
"""

import re

import griffe

NO_RUN = re.compile(r"^(\s*```python) no-run\s*$", re.M)
# An example: a `>>>` line, then its continuation and output lines, up to
# a blank line (where doctest ends its expected output too).
EXAMPLE = re.compile(r"^>>> .*?(?=\n[ \t]*\n|\Z)", re.M | re.S)


def on_page_markdown(markdown, **kwargs):
    return NO_RUN.sub(r"\1", markdown)


class DoctestBlocks(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>> " in obj.docstring.value:
            obj.docstring.value = EXAMPLE.sub(
                lambda example: f"```pycon\n{example.group(0)}\n```",
                obj.docstring.value,
            )
