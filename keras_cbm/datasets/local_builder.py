"""What the builders of this subpackage share: they generate their data."""

import inspect

import tensorflow_datasets as tfds
from etils import epath


class LocalBuilder:
    """Mixin (first in the bases) for a builder that generates its `train`
    and `test` splits with `_generate_examples(split)`, downloading nothing.

    It also gives the builder the path of its own module as `code_path`:
    TFDS 4.9.10 computes it, for a builder outside its own package, with
    `importlib_resources`, a package it only installs on Python < 3.9;
    without this, `download_and_prepare` fails with `ModuleNotFoundError`.
    """

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated: nothing to download.
        return {
            split: self._generate_examples(split) for split in ("train", "test")
        }

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(inspect.getfile(cls))
