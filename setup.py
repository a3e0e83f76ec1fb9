"""Installs keras_cbm: deep recurrent models of video for Keras 3."""

import setuptools

EDGE = ["ai-edge-litert", "onnxruntime", "tf2onnx"]

setuptools.setup(
    name="keras-cbm",
    version="0.1.0",
    description=(
        "Context Bridge Module recurrent layers and overlap coherence "
        "training for deep video RNNs in Keras 3."
    ),
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["keras_cbm", "keras_cbm.*"]),
    python_requires=">=3.10",
    # The design card's packages, plus what they need at run time and the
    # main job's training curves (matplotlib).
    install_requires=[
        # Known to work: Keras 3.15 and the 3.16 nightlies (the suite
        # passes on both; keras_cbm.keras_internals.CHECKED_KERAS_VERSIONS).
        "keras>=3.15,<3.17",
        "tensorflow>=2.21",
        "tensorflow-datasets",
        "keras-tuner",
        # keras-tuner imports tensorboard under TensorFlow; TF 2.21 no
        # longer installs it.
        "tensorboard",
        "numpy",
        # The PNG of the training curves that the main job writes.
        "matplotlib",
    ],
    # A part that needs an extra names it when its package is missing
    # (`keras_cbm.extras`).
    extras_require={
        # PyAV (FFmpeg) reads and writes video files: keras_cbm.data's
        # directory datasets, keras_cbm.datasets.export_videos; tested with
        # 18.
        "video": ["av>=18"],
        # The handwritten digits of the moving_digits dataset.
        "digits": ["scikit-learn"],
        # The frame-by-frame step on devices (keras_cbm.serving.export_step,
        # LiteRTStep, OnnxStep): Keras' LiteRT and ONNX exporters and the
        # two runtimes.
        "edge": EDGE,
        "test": [
            "av>=18",
            "scikit-learn",
            "pytest",
            "pytest-xdist",
            "jax[cpu]",
            "ruff",
            # tfds.testing imports dill, which tensorflow-datasets leaves
            # out.
            "dill",
            # Property-based tests of the layers and the data functions.
            "hypothesis",
            # The API reference site (mkdocs.yml), built strictly in the
            # suite (tests/reference_test.py).
            "mkdocs",
            "mkdocstrings[python]",
            *EDGE,
        ],
    },
)
