"""Exports a `polygon_rnn` model as a SavedModel that annotates: it traces
an object's polygon, continuing from the vertices a person fixed."""

import keras
import tensorflow as tf

from keras_cbm.models.polygon_decoding import decode_polygons
from keras_cbm.models.polygon_decoding import polygon_parts
from keras_cbm.serving.export import _checked


def export_annotator(model, path, max_vertices=20, scale=1 / 255):
    """Writes a SavedModel of `model` with the signature `annotate`.

    `annotate(image, fixed_vertices)`: uint8 images `(batch, rows, cols,
    3)` (scaled by `scale` before the model) and int32 `(batch, k, 2)`
    `(row, col)` grid cells, each row's fixed vertices first, then
    `(-1, -1)` (`k` may be 0), to `{"vertices": (batch, max_vertices, 2),
    "num_vertices": (batch,)}`, `keras_cbm.models.decode_polygons`' greedy
    decoding in one graph loop. A server needs only TensorFlow:

    ```python
    import tensorflow as tf

    annotate = tf.saved_model.load(path).signatures["annotate"]
    polygon = annotate(image=images, fixed_vertices=corrections)
    ```

    An image of another size is refused naming `image`; a fixed vertex
    off the grid (other than the `(-1, -1)` padding), or fixed vertices of
    another batch size than the images, is refused naming
    `fixed_vertices` (`InvalidArgumentError`), and the server keeps
    serving.

    Args:
        model: A `keras_cbm.models.polygon_rnn` model.
        path: The SavedModel's directory.
        max_vertices: The most vertices of a polygon.
        scale: The factor from uint8 pixels to the model's input.

    Returns:
        `path`.
    """
    encoder, _, _, grid = polygon_parts(model)
    image_shape = tuple(encoder.inputs[0].shape[1:])
    image_spec = tf.TensorSpec((None,) + image_shape, "uint8", name="image")
    fixed_spec = tf.TensorSpec((None, None, 2), "int32", name="fixed_vertices")

    def annotate(image, fixed_vertices):
        image = _checked(image, image_spec)
        fixed_vertices = _checked(fixed_vertices, fixed_spec)
        padding = tf.reduce_all(fixed_vertices == -1, axis=-1)
        on_grid = tf.reduce_all(
            (fixed_vertices >= 0) & (fixed_vertices < grid), axis=-1
        )
        checks = [
            tf.debugging.assert_equal(
                tf.reduce_all(padding | on_grid),
                True,
                message=(
                    f"`fixed_vertices` must be (row, col) cells in [0, "
                    f"{grid}) or (-1, -1) after a row's last fixed vertex"
                ),
            ),
            tf.debugging.assert_equal(
                tf.shape(fixed_vertices)[0],
                tf.shape(image)[0],
                message="`fixed_vertices` must have the batch size of `image`",
            ),
        ]
        with tf.control_dependencies(checks):
            pixels = tf.cast(image, encoder.inputs[0].dtype) * scale
        decoded = decode_polygons(model, pixels, fixed_vertices, max_vertices)
        return {
            "vertices": decoded["vertices"],
            "num_vertices": decoded["num_vertices"],
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "annotate", annotate, input_signature=[image_spec, fixed_spec]
    )
    archive.write_out(path, verbose=False)
    return path
