import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras.src import testing

from keras_cbm import models
from keras_cbm.serving.polygon_export import export_annotator
from tests.models import polygon_rnn_test as cases

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="serving needs the TensorFlow backend",
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
CLIENT = os.path.join(ROOT, "tests", "serving", "annotate.py")


class PolygonExportTest(testing.TestCase):
    @pytest.mark.slow
    def test_fresh_process_annotates_as_keras_decodes(self):
        work_dir = self.get_temp_dir()
        model = cases.tiny_model()
        cases.randomize(model, seed=2, scale=0.2)
        path = export_annotator(
            model, os.path.join(work_dir, "annotator"), max_vertices=6
        )
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (2, 16, 16, 3)).astype("uint8")
        _, tokens = cases.tiny_data()
        given = cases.as_vertices(tokens)
        fixed = {
            "none": given[:, :0],
            "first": given[:, :1],
            "two": given[:, :2],
            # Row 1 fixes one vertex only, then pads.
            "ragged": np.stack(
                [given[0, :3], [*given[1, :1], [-1, -1]] + [[-1, -1]]]
            ),
        }
        inputs_path = os.path.join(work_dir, "inputs.npz")
        np.savez(
            inputs_path,
            images=images,
            **{f"fixed_{k}": v.astype("int32") for k, v in fixed.items()},
        )
        output_path = os.path.join(work_dir, "served.npz")
        subprocess.run(
            [sys.executable, CLIENT, path, inputs_path, output_path],
            cwd=work_dir,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
            check=True,
            timeout=300,
        )
        served = dict(np.load(output_path))
        self.assertFalse(served["imported_keras_cbm"])
        pixels = images.astype("float32") / 255
        for name, vertices in fixed.items():
            decoded = models.decode_polygons(model, pixels, vertices, 6)
            self.assertAllEqual(served[f"vertices_{name}"], decoded["vertices"])
            self.assertAllEqual(
                served[f"num_vertices_{name}"], decoded["num_vertices"]
            )
        self.assertAllEqual(served["vertices_two"][:, :2], given[:, :2])
        self.assertAllEqual(served["after_errors"], served["vertices_none"])
        for name, expected in (
            ("image_size_numpy", "image"),
            ("image_size_tensor", "image"),
            ("fixed_off_grid", r"`fixed_vertices` must be \(row, col\) cells"),
            ("fixed_negative", r"`fixed_vertices` must be \(row, col\) cells"),
            ("fixed_batch", "`fixed_vertices` must have the batch size"),
        ):
            self.assertRegex(str(served[f"error_{name}"]), expected, msg=name)
