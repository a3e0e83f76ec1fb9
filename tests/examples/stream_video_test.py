"""`examples/stream_video.py` on a real video file: a motion_order video
written with PyAV, streamed through the LiteRT step of a main-job model."""

import os
import re
import runpy

import av
import keras
import numpy as np
import pytest

from keras_cbm import datasets
from keras_cbm import models
from keras_cbm.datasets.motion_order import motion_order_examples
from keras_cbm.training import CoherenceModel
from tests.examples.examples_smoke_test import ROOT
from tests.examples.examples_smoke_test import run_script

EXAMPLE = os.path.join(ROOT, "examples", "stream_video.py")

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the example exports with the TensorFlow backend",
)


def write_video(path, video):
    """Writes uint8 grey frames `(time, rows, cols, 1)` as H.264."""
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in video:
            image = av.VideoFrame.from_ndarray(frame[..., 0], format="gray")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


@pytest.mark.slow
def test_streams_a_video_file_through_litert(tmp_path):
    config = datasets.MotionOrder.builder_configs["recognition"]
    (_, example), *_ = motion_order_examples(config, "test", 1)
    video_path = str(tmp_path / "motion.mp4")
    write_video(video_path, example["video"][:40])
    keras.utils.set_random_seed(0)
    model = models.standalone_classifier(
        12,
        frame_shape=example["video"].shape[1:],
        stage_filters=(2, 4),
        blocks_per_stage=1,
        temporal_gate="recurrent",
    )
    model_path = str(tmp_path / "model.keras")
    CoherenceModel(model).save(model_path)

    stdout = run_script(
        "examples/stream_video.py",
        f"--video={video_path}",
        f"--model={model_path}",
        "--frame-stride=2",
        "--print-every=5",
        f"--output={tmp_path / 'out'}",
    )
    assert len(re.findall(r"^step +\d+ \(frame +\d+\): \w+", stdout, re.M)) == 4
    assert "Prediction after 20 steps:" in stdout
    printed = np.array(stdout.split("Probabilities:")[1].split(), "float32")
    # As the model's own run over the frames the example decoded.
    frames = np.stack(
        list(
            runpy.run_path(EXAMPLE)["decoded_frames"](
                video_path, model.inputs[0].shape[2:], 2
            )
        )
    )
    # Unscaled, as the main job trains.
    expected = keras.ops.softmax(model(frames[None].astype("float32")))[0, -1]
    np.testing.assert_allclose(printed, expected, atol=2e-6)
    assert (tmp_path / "out" / "step_none.tflite").is_file()
