"""A fix shared by the builders of this subpackage."""

import inspect

import tensorflow_datasets as tfds
from etils import epath


class LocalCodePath:
    """Mixin (first in the bases) that gives a builder the path of its own
    module as `code_path`.

    TFDS 4.9.10 computes `code_path` of a builder outside its own package
    with `importlib_resources`, a package it only installs on Python < 3.9:
    without this, `download_and_prepare` fails with `ModuleNotFoundError`.
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(inspect.getfile(cls))
