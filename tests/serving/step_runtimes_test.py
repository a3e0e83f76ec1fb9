"""The step runtimes (`LiteRTStep`, `OnnxStep`, `SavedModelStep`) and
`StreamServer` on one tiny exported model: the same answer or the same
refusal for any input."""

import os

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_cbm.layers import CBM
from keras_cbm.serving import LiteRTStep
from keras_cbm.serving import OnnxStep
from keras_cbm.serving import SavedModelStep
from keras_cbm.serving import StreamServer
from keras_cbm.serving import export
from keras_cbm.serving import export_step

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="serving needs the TensorFlow backend",
)

FRAME_SHAPE = (4, 4, 1)
# The states of the stacked cells: LSTMCell's [h, c], GRUCell's [h].
STATE_SIZES = (3, 3, 2)


def exported_steps(model, directory):
    """The three runtimes of `model`'s step, exported to `directory`."""
    return {
        "litert": LiteRTStep(
            export_step(model, os.path.join(directory, "step.tflite"))
        ),
        "onnx": OnnxStep(
            export_step(
                model, os.path.join(directory, "step.onnx"), format="onnx"
            )
        ),
        "saved_model": SavedModelStep(
            export(model, os.path.join(directory, "saved_model"))
        ),
    }


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory):
    """The three runtimes of one model with stacked cells, and the model."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None,) + FRAME_SHAPE),
            keras.layers.TimeDistributed(keras.layers.Flatten()),
            keras.layers.RNN(
                [keras.layers.LSTMCell(3), keras.layers.GRUCell(2)],
                return_sequences=True,
            ),
            keras.layers.Dense(3),
        ]
    )
    return exported_steps(model, tmp_path_factory.mktemp("steps")), model


@pytest.fixture(scope="module")
def masked_runtimes(tmp_path_factory):
    """The three runtimes of a model whose recurrent layers see a mask (a
    black frame is masked), and the model."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None,) + FRAME_SHAPE),
            keras.layers.Masking(0.0),
            keras.layers.TimeDistributed(keras.layers.Flatten()),
            CBM(3, return_sequences=True),
            keras.layers.GRU(2, return_sequences=True),
            keras.layers.Dense(3),
        ]
    )
    return exported_steps(model, tmp_path_factory.mktemp("masked")), model


def outcome(step, frames, states):
    """What `step` gives: `("ok", probabilities, states)` or
    `("refused", type, message)`."""
    try:
        probabilities, states = step(frames, states)
    except Exception as error:
        return ("refused", type(error), str(error))
    return ("ok", np.asarray(probabilities), [np.asarray(s) for s in states])


def assert_same_outcomes(outcomes):
    (first_name, first), *others = outcomes.items()
    for name, other in others:
        assert other[0] == first[0], (first_name, first, name, other)
        if first[0] == "refused":
            assert other[1:] == first[1:], (first_name, first, name, other)
        else:
            np.testing.assert_allclose(other[1], first[1], atol=1e-5)
            for got, expected in zip(other[2], first[2], strict=True):
                np.testing.assert_allclose(got, expected, atol=1e-5)


def zero_states(batch):
    return [np.zeros((batch, size), "float32") for size in STATE_SIZES]


# Frames each runtime used to take (a float frame cast to uint8, a frame
# of another size or channels as a bigger batch) or fail on deep inside.
REFUSED = {
    "float frames": (
        np.full((1,) + FRAME_SHAPE, 0.5, "float32"),
        zero_states(1),
        r"`frames` must be uint8 of shape \(batch, 4, 4, 1\)\. "
        r"Received: frames of dtype float32",
    ),
    "bigger frames": (
        np.zeros((1, 8, 8, 1), "uint8"),
        zero_states(1),
        r"Received: frames of dtype uint8 and shape \(1, 8, 8, 1\)",
    ),
    "more channels": (
        np.zeros((1, 4, 4, 3), "uint8"),
        zero_states(1),
        r"shape \(1, 4, 4, 3\)",
    ),
    "no batch axis": (
        np.zeros(FRAME_SHAPE, "uint8"),
        zero_states(1),
        r"shape \(4, 4, 1\)",
    ),
    "2 frames, 1-row states": (
        np.zeros((2,) + FRAME_SHAPE, "uint8"),
        zero_states(1),
        r"`states\[0\]` must be float32 of shape \(2, 3\)\. Received: "
        r"states\[0\] of dtype float32 and shape \(1, 3\)",
    ),
    "float64 states": (
        np.zeros((1,) + FRAME_SHAPE, "uint8"),
        [state.astype("float64") for state in zero_states(1)],
        r"`states\[0\]` must be float32",
    ),
    "missing state": (
        np.zeros((1,) + FRAME_SHAPE, "uint8"),
        zero_states(1)[:2],
        r"`states` must hold 3 arrays",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_every_runtime_refuses_alike_naming_the_input(runtimes, case):
    steps, _ = runtimes
    frames, states, message = REFUSED[case]
    for step in steps.values():
        with pytest.raises(ValueError, match=message):
            step(frames, states)


def assert_steps_equal_the_whole_run(steps, model, video):
    """Every runtime, and a server of two streams, frame by frame over
    `video` (2 rows) gives the probabilities of one run of `model`."""
    whole = keras.ops.softmax(model(video / np.float32(255)))
    server = StreamServer(steps["litert"])
    server.add(0)
    server.add(1)
    for name, step in steps.items():
        states = step.zero_states(2)
        for t in range(video.shape[1]):
            probabilities, states = step(video[:, t], states)
            np.testing.assert_allclose(
                probabilities, whole[:, t], atol=1e-5, err_msg=name
            )
    for t in range(video.shape[1]):
        for row in (0, 1):
            server.push(row, video[row, t])
        for row in (0, 1):
            np.testing.assert_allclose(
                server.read(row), whole[row, t], atol=1e-5, err_msg="server"
            )


def test_stacked_cells_step_as_the_whole_video_runs(runtimes):
    steps, model = runtimes
    video = np.random.default_rng(0).integers(
        0, 256, (2, 4) + FRAME_SHAPE, "uint8"
    )
    assert_steps_equal_the_whole_run(steps, model, video)


def test_masked_frames_step_as_the_whole_video_runs(masked_runtimes):
    # A masked frame outputs what one run does there: each recurrent
    # layer's output at the last unmasked frame (zeros before any).
    steps, model = masked_runtimes
    video = np.random.default_rng(0).integers(
        1, 256, (2, 5) + FRAME_SHAPE, "uint8"
    )
    video[0, [0, 2, 3]] = 0
    video[1, 3] = 0
    assert_steps_equal_the_whole_run(steps, model, video)


FRAME_SHAPES = st.sampled_from(
    [FRAME_SHAPE, (8, 8, 1), (4, 4, 3), (4, 4), (4, 4, 1, 1), (16,)]
)
DTYPES = st.sampled_from(["uint8", "float32", "int64", "float64"])


@st.composite
def step_inputs(draw):
    """Frames and states, right or wrong in any of their parts."""
    batch = draw(st.integers(0, 3))
    frames = np.random.default_rng(batch).integers(
        0, 256, (batch,) + draw(FRAME_SHAPES)
    )
    if batch and draw(st.booleans()):
        frames = frames[0]  # no batch axis
    frames = frames.astype(draw(DTYPES))
    count = draw(st.sampled_from([3, 3, 3, 2, 4]))
    states = [
        np.random.default_rng(k)
        .normal(
            size=(
                draw(st.sampled_from([batch, batch, 1, 2])),
                STATE_SIZES[k % 3] + draw(st.sampled_from([0, 0, 1])),
            )
        )
        .astype(draw(st.sampled_from(["float32", "float32", "float64"])))
        for k in range(count)
    ]
    return frames, states


@settings(derandomize=True, max_examples=25, deadline=None)
@given(inputs=step_inputs())
def test_runtimes_give_the_same_answer_or_refusal(runtimes, inputs):
    steps, _ = runtimes
    frames, states = inputs
    outcomes = {
        name: outcome(step, frames, states) for name, step in steps.items()
    }
    assert_same_outcomes(outcomes)
    # The server (zero states, a stream a frame) refuses a frame the
    # runtimes refuse, and otherwise reads what they give from zero states.
    server = StreamServer(steps["litert"])
    alone = outcome(steps["litert"], frames, zero_states(len(frames)))
    try:
        for k, frame in enumerate(frames):
            server.add(k)
            server.push(k, frame)
    except ValueError as error:
        assert alone[0] == "refused", (str(error), alone)
        assert "`frame` must be uint8 of shape (4, 4, 1)" in str(error)
        return
    if alone[0] == "ok":
        for k in range(len(frames)):
            np.testing.assert_allclose(server.read(k), alone[1][k], atol=1e-6)
    else:
        # No frame to push: an empty batch, which the runtimes refuse.
        assert len(frames) == 0, alone
