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
    install_requires=[
        "keras>=3.15",
        "tensorflow>=2.21",
        "tensorflow-datasets",
        "keras-tuner",
        # keras-tuner imports tensorboard under TensorFlow; TF 2.21 no
        # longer installs it.
        "tensorboard",
        "numpy",
        # Bundled handwritten digits for the moving_digits dataset.
        "scikit-learn",
        # PNG training curves of the examples.
        "matplotlib",
        # PyAV (FFmpeg) decodes video files for keras_cbm.data's directory
        # datasets; tested with 18.
        "av>=18",
    ],
    extras_require={
        # The frame-by-frame step on devices (keras_cbm.serving.export_step,
        # LiteRTStep, OnnxStep): Keras' LiteRT and ONNX exporters and the
        # two runtimes.
        "edge": EDGE,
        # tfds.testing imports dill, which tensorflow-datasets leaves out.
        "test": [
            "pytest",
            "pytest-xdist",
            "jax[cpu]",
            "ruff",
            "dill",
            # Property-based tests of the layers and the data functions.
            "hypothesis",
            *EDGE,
        ],
    },
)
