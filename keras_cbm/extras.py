"""Imports of the packages that only some parts of keras_cbm need.

The core install (Keras, TensorFlow, TensorFlow Datasets, KerasTuner,
NumPy, Matplotlib for the main job's curves) runs the main job; the other
packages come with an extra of `pip install keras_cbm[EXTRA]`, and a
missing one is named with its extra when the part that needs it loads.
"""

import importlib

# The extra of `setup.py` that installs each optional package.
EXTRAS = {
    "av": "video",
    "sklearn": "digits",
}


def require(module, purpose):
    """Imports `module`, or says which extra installs it.

    Args:
        module: A dotted module name whose top package is in `EXTRAS`.
        purpose: What needs it, for the error message.

    Returns:
        The module.

    Raises:
        ModuleNotFoundError: When its package is not installed, naming the
            extra that installs it.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        package = module.split(".")[0]
        if error.name is None or error.name.split(".")[0] != package:
            raise
        raise ModuleNotFoundError(
            f"{purpose} needs `{package}`, which keras_cbm installs with "
            f"its `{EXTRAS[package]}` extra: pip install "
            f"'keras_cbm[{EXTRAS[package]}]'",
            name=error.name,
        ) from error
