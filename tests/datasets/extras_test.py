"""Without the optional packages, the main job's parts import and the parts
that need one name the extra that installs it."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

SCRIPT = textwrap.dedent(
    """
    import sys

    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("av", "sklearn"):
                raise ModuleNotFoundError(
                    f"No module named {name!r}", name=name
                )

    sys.meta_path.insert(0, Missing())
    import keras_cbm.data
    import keras_cbm.datasets
    from keras_cbm.datasets import moving_digits

    def message(use):
        try:
            use()
        except ModuleNotFoundError as error:
            return str(error)
        raise AssertionError(f"{use} ran without its package")

    print(message(lambda: keras_cbm.data.video_dataset_from_directory))
    print(message(lambda: keras_cbm.datasets.export_videos))
    print(message(lambda: moving_digits.split_digits("train")))
    print(keras_cbm.data.overlapping_clips.__name__)
    """
)


def test_missing_extras_are_named_when_used():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    video, export, digits, clips = result.stdout.splitlines()
    assert video.startswith("Reading video files needs `av`")
    assert "pip install 'keras_cbm[video]'" in video
    assert export.startswith("Writing video files needs `av`")
    assert "pip install 'keras_cbm[digits]'" in digits
    assert "`sklearn`" in digits
    assert clips == "overlapping_clips"
