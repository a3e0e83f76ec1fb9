"""Mask IoU of predicted polygons, rasterised at the image's resolution."""

import keras
from keras import ops


def rasterize_polygons(vertices, image_size, grid_size):
    """Masks of polygons given by grid vertices, at the image's resolution.

    A pixel is inside when its centre is (even-odd rule). Grid cell
    `(row, col)` stands for the pixel point `(row + 0.5, col + 0.5) *
    image_size / grid_size`. Rows of `vertices` holding -1 (padding after a
    polygon's end) are left out; a polygon of fewer than 3 vertices is
    empty.

    Args:
        vertices: Integer tensor `(batch, steps, 2)` of `(row, col)` cells,
            -1 after each polygon's last vertex.
        image_size: Rows and columns of the mask.
        grid_size: Rows and columns of the grid.

    Returns:
        Float32 masks `(batch, image_size, image_size)`, 1 inside.
    """
    vertices = ops.convert_to_tensor(vertices)
    valid = ops.all(vertices >= 0, axis=-1)
    count = ops.sum(ops.cast(valid, "int32"), axis=-1, keepdims=True)
    points = (ops.cast(vertices, "float32") + 0.5) * (image_size / grid_size)
    steps = ops.shape(points)[1]
    # Each edge runs from a vertex to the next valid one, the last back to
    # the first: the next index wraps at the polygon's own count.
    index = ops.arange(steps, dtype="int32")[None, :]
    following = ops.where(index + 1 >= count, 0, index + 1)
    ends = ops.take_along_axis(
        points,
        ops.broadcast_to(following[..., None], ops.shape(points)),
        axis=1,
    )
    edge = valid & (count >= 3)
    r0, c0 = points[:, None, None, :, 0], points[:, None, None, :, 1]
    r1, c1 = ends[:, None, None, :, 0], ends[:, None, None, :, 1]
    centres = ops.arange(image_size, dtype="float32") + 0.5
    rows = centres[None, :, None, None]
    cols = centres[None, None, :, None]
    crosses = ops.not_equal(r0 > rows, r1 > rows) & edge[:, None, None, :]
    # Where the edge is crossed, r1 != r0, so the division is safe.
    span = ops.where(crosses, r1 - r0, 1.0)
    at = c0 + (rows - r0) * (c1 - c0) / span
    hits = ops.sum(ops.cast(crosses & (cols < at), "int32"), axis=-1)
    return ops.cast(hits % 2, "float32")


def mask_iou(true_masks, predicted_masks):
    """Intersection over union of binary masks `(batch, ...)`, per mask;
    1 where both are empty."""
    axes = tuple(range(1, len(true_masks.shape)))
    true_masks = ops.cast(true_masks > 0, "float32")
    predicted_masks = ops.cast(predicted_masks > 0, "float32")
    intersection = ops.sum(true_masks * predicted_masks, axis=axes)
    union = ops.sum(ops.maximum(true_masks, predicted_masks), axis=axes)
    return ops.where(union > 0, intersection / ops.maximum(union, 1.0), 1.0)


def bounding_box_masks(masks):
    """The filled bounding box of each binary mask `(batch, rows, cols)`:
    the IoU baseline of annotating with a box."""
    masks = ops.cast(masks > 0, "float32")
    row_any = ops.max(masks, axis=2)
    col_any = ops.max(masks, axis=1)

    def span(present):
        # Inside the box: at or after the first hit and at or before the
        # last one.
        after_first = ops.cumsum(present, axis=1) > 0
        before_last = ops.flip(ops.cumsum(ops.flip(present, 1), axis=1), 1) > 0
        return ops.cast(after_first & before_last, "float32")

    return span(row_any)[:, :, None] * span(col_any)[:, None, :]


@keras.saving.register_keras_serializable(package="keras_cbm")
class PolygonMaskIoU(keras.metrics.Mean):
    """Mean mask IoU of predicted polygons against the true masks.

    The predicted polygon (grid vertices, as `decode_polygons` returns
    them) is rasterised at the image's resolution with
    `rasterize_polygons` and compared with the true mask; every example
    counts once, however the examples are batched.

    Args:
        image_size: Rows and columns of the masks.
        grid_size: Rows and columns of the vertex grid.
        name: The metric's name.
        dtype: The metric's dtype.

    Call arguments (`update_state`):
        y_true: True masks `(batch, image_size, image_size)` or with a last
            axis of 1, nonzero inside.
        y_pred: Predicted vertices `(batch, steps, 2)`, integer `(row,
            col)` cells, -1 after each polygon's end.
        sample_weight: Optional weights `(batch,)`.

    Example:

    >>> square = np.array([[[1, 1], [1, 2], [2, 2], [2, 1]]])
    >>> true = rasterize_polygons(square, 8, 4)
    >>> metric = PolygonMaskIoU(image_size=8, grid_size=4)
    >>> metric.update_state(true, square)
    >>> float(metric.result())
    1.0
    """

    def __init__(self, image_size, grid_size, name="mask_iou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.image_size = image_size
        self.grid_size = grid_size

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == 4:
            y_true = y_true[..., 0]
        predicted = rasterize_polygons(y_pred, self.image_size, self.grid_size)
        return super().update_state(
            mask_iou(y_true, predicted), sample_weight=sample_weight
        )

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "grid_size": self.grid_size,
        }
