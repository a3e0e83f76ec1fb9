"""Speed of `ConvCBM2D` against `ConvLSTM2D`, its cell path and its limit.

What it measures, side by side in one run (one shape at a time, the timed
runs of all variants interleaved so that load on a shared machine hits them
alike), the median of `--runs` timed calls after warm-up, for a compiled
forward pass and a compiled forward+backward pass (the gradient of
`sum(outputs)` with respect to the layer's trainable weights and the input):

- `cbm`: `ConvCBM2D` at its defaults (the gated T), the time-batched path
  (input convolutions `[W_R, W_T, W_a]` for all frames at once, only the
  state convolution `[U_T, U_a] * c` in the loop: FLOPs
  `(3C*F + 2F*F) / (4C*F + 4F*F)` = 5/8 of ConvLSTM's for `C == F`);
- `cbm_cell`: `keras.layers.RNN(ConvCBMCell(...))`, the same cell run step
  by step (the per-step path; same weights, same outputs);
- `limit`: the same convolutions and activations as `cbm`, with its
  weights, but no recurrence: the input convolution to `3F` channels and
  the `F -> 2F` state convolution each run once over all `batch * time`
  frames (the state convolution reads `r` instead of `c_{t-1}`), so it has
  the layer's FLOPs and no sequential dependence: the fastest the layer
  can be;
- `paper`: `ConvCBM2D(**PAPER_CELL)`, the paper's cell (input convolution
  to `2F`, state convolution `F -> F`: FLOPs 3/8 of ConvLSTM's), and
  `paper_limit`, its own no-recurrence limit;
- `convlstm`: `keras.layers.ConvLSTM2D` with the same filters, kernel and
  input;
- `cbm`, `cbm_cell` and `convlstm` again with `unroll=True` (`*_unroll`).

It prints absolute times, the ratios and PASS/MISS against the CPU targets:
`cbm` forward+backward <= 1.1x its `limit` and no slower than the per-step
path (1.0x `cbm_cell`); the paper's cell <= 0.40x `convlstm` and <= 1.3x
its limit. `cbm / convlstm` is printed against its FLOP ratio.

Compilation: on TensorFlow, `tf.function` without `jit_compile`, because
under XLA on CPU back-propagation through `tf.while_loop` is 15-32x slower
for every variant (ConvLSTM2D included); on JAX, `jax.jit` (always XLA).
With `KERAS_BACKEND=jax` nothing here imports TensorFlow, so the script runs
on a GPU machine that has only JAX.

Run from the repository root:

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/layer_speed.py
    KERAS_BACKEND=jax python benchmarks/layer_speed.py
    python benchmarks/layer_speed.py --quick    # smoke test, tiny shape
    python benchmarks/layer_speed.py --shapes 4x16x32x32x32 --runs 20

Shapes are `BxTxHxWxC` (channels_last). `--filters` defaults to the shape's
`C`, where the 3/8 FLOP ratio holds. A function whose runs would exceed
`--max-seconds` (XLA's while-loop backward on CPU takes seconds a call) gets
fewer runs, marked `(n=...)` and `(few runs)`. The default run takes about
4 minutes on TensorFlow and 12 on JAX, on 2 CPU cores.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# The backend is fixed when Keras is first imported, so read it first.
BACKEND = os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
from keras import ops  # noqa: E402

from keras_cbm.layers import PAPER_CELL  # noqa: E402
from keras_cbm.layers import ConvCBM2D  # noqa: E402
from keras_cbm.layers import ConvCBMCell  # noqa: E402

# The shape, a larger one (more channels: the regime of deep stacks),
# and a larger image, where on CPU the per-step path's small working set
# stays in cache and the time-batched path loses its edge (see README).
DEFAULT_SHAPES = "4x16x32x32x32,4x16x32x32x64,4x16x64x64x32"
QUICK_SHAPE = "2x4x8x8x4"
WARMUP_RUNS = 3

# Target: (numerator, denominator, pass if ratio <= this, label).
TARGETS = (
    ("cbm", "limit", 1.1, "ConvCBM2D / its no-recurrence limit"),
    ("cbm", "cbm_cell", 1.0, "time-batched / per-step (cell) path"),
    ("paper", "convlstm", 0.40, "paper's cell / ConvLSTM2D"),
    ("paper", "paper_limit", 1.3, "paper's cell / its limit"),
)
# Ratios printed for information only.
EXTRA_RATIOS = (
    ("cbm", "convlstm", "ConvCBM2D / ConvLSTM2D (FLOPs 5/8)"),
    ("cbm", "paper", "ConvCBM2D / the paper's cell"),
    ("limit", "convlstm", "limit / ConvLSTM2D"),
    ("cbm_unroll", "convlstm_unroll", "ConvCBM2D / ConvLSTM2D, unroll=True"),
    ("cbm_unroll", "limit", "ConvCBM2D unroll=True / limit"),
    ("cbm_unroll", "cbm_cell_unroll", "time-batched / per-step, unroll=True"),
)


class NoRecurrenceLimit(keras.layers.Layer):
    """A CBM layer's convolutions and activations without its loop.

    It shares the cell's weights and does the layer's work on all frames at
    once, whatever the cell: one input convolution (to `2F` channels, `3F`
    with a gate), the state convolution (`F -> F`, `F -> 2F` with the
    recurrent gate; fed `r`, which needs no earlier step, where the layer
    feeds `c_{t-1}`), the activations, the gate's update and the merge.
    """

    def __init__(self, cell, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell

    def call(self, sequences):
        cell = self.cell
        batch, steps = ops.shape(sequences)[0], ops.shape(sequences)[1]
        frames = ops.reshape(sequences, (-1,) + tuple(sequences.shape[2:]))
        projected = ops.conv(frames, cell.kernel, padding="same") + cell.bias
        blocks = ops.split(projected, projected.shape[-1] // cell.units, -1)
        representation = cell.activation(blocks[0])
        recurrent = ops.conv(
            representation, cell.recurrent_kernel, padding="same"
        )
        recurrent = ops.split(recurrent, recurrent.shape[-1] // cell.units, -1)
        state = cell.recurrent_activation(blocks[1] + recurrent[0])
        if cell.temporal_gate is not None:
            gate = ops.sigmoid(sum([blocks[2]] + recurrent[1:]))
            state = representation + gate * (state - representation)
        outputs = cell.merge_flows(representation, state)
        return ops.reshape(outputs, (batch, steps) + tuple(outputs.shape[1:]))


def make_variants(filters, kernel_size, input_shape):
    """Builds every timed layer on `input_shape`; returns `{name: layer}`."""
    conv_args = dict(kernel_size=kernel_size, padding="same")
    variants = {}
    for suffix, unroll in (("", False), ("_unroll", True)):
        variants["cbm" + suffix] = ConvCBM2D(
            filters, return_sequences=True, unroll=unroll, **conv_args
        )
        variants["cbm_cell" + suffix] = keras.layers.RNN(
            ConvCBMCell(rank=2, filters=filters, **conv_args),
            return_sequences=True,
            unroll=unroll,
        )
        variants["convlstm" + suffix] = keras.layers.ConvLSTM2D(
            filters, return_sequences=True, unroll=unroll, **conv_args
        )
    variants["paper"] = ConvCBM2D(
        filters, return_sequences=True, **PAPER_CELL, **conv_args
    )
    for layer in variants.values():
        layer.build(input_shape)
    # The cell path and the limit use the time-batched layer's weights, so
    # all the default layer's variants compute with identical numbers.
    cbm = variants["cbm"]
    for name in ("cbm_unroll", "cbm_cell", "cbm_cell_unroll"):
        variants[name].set_weights(cbm.get_weights())
    for name, layer in (("limit", cbm), ("paper_limit", variants["paper"])):
        variants[name] = NoRecurrenceLimit(layer.cell)
        variants[name].build(input_shape)
    return variants


# Per-backend compiled functions. Each returns `(forward, forward_backward)`,
# two callables of the input that run compiled code and block until done.


def tensorflow_functions(layer):
    import tensorflow as tf

    @tf.function(jit_compile=False)
    def forward(x):
        return layer(x)

    @tf.function(jit_compile=False)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, [layer.trainable_variables, x])

    # Eager TensorFlow on CPU returns only when the function has run.
    return forward, forward_backward


def jax_functions(layer):
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def outputs(trainable, x):
        return layer.stateless_call(trainable, non_trainable, x)[0]

    def loss(trainable, x):
        return jnp.sum(outputs(trainable, x))

    forward_jit = jax.jit(outputs)
    grad_jit = jax.jit(jax.grad(loss, argnums=(0, 1)))

    # JAX dispatches asynchronously: wait for the results inside the timing.
    def forward(x):
        return jax.block_until_ready(forward_jit(trainable, x))

    def forward_backward(x):
        return jax.block_until_ready(grad_jit(trainable, x))

    return forward, forward_backward


PASSES = ("fwd", "fwd+bwd")
BACKEND_FUNCTIONS = {"tensorflow": tensorflow_functions, "jax": jax_functions}
COMPILATION = {
    "tensorflow": "tf.function(jit_compile=False) (no XLA)",
    "jax": "jax.jit (XLA)",
}


def device_name():
    """The accelerator the backend computes on, e.g. `cpu` or `gpu (H100)`."""
    if BACKEND == "jax":
        import jax

        device = jax.devices()[0]
        if device.device_kind == device.platform:
            return device.platform
        return f"{device.platform} ({device.device_kind})"
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def time_call(function, x):
    start = time.perf_counter()
    function(x)
    return time.perf_counter() - start


def run_counts(functions, x, runs, max_seconds):
    """Compiles and warms up each function; returns `{key: timed runs}`.

    A function whose `runs` timed calls would take longer than
    `max_seconds` (XLA's while-loop backward on CPU: seconds a call) gets
    fewer runs, at least one, and no more warm-up than its first timed call.
    """
    counts = {}
    for key, function in functions.items():
        function(x)  # Traces and compiles.
        seconds = time_call(function, x)  # The first warm-up run.
        if seconds * (WARMUP_RUNS - 1 + runs) <= max_seconds:
            for _ in range(WARMUP_RUNS - 1):
                function(x)
            counts[key] = runs
        else:
            counts[key] = max(1, min(runs, int(max_seconds // seconds)))
    return counts


def measure(functions, x, runs, max_seconds):
    """Median seconds and run count of each function, `{key: (s, n)}`.

    The timed runs are interleaved across functions: slow spells of a shared
    machine then hit all variants alike instead of whichever ran during one.
    """
    counts = run_counts(functions, x, runs, max_seconds)
    samples = {key: [] for key in functions}
    for round_ in range(runs):
        for key, function in functions.items():
            if round_ < counts[key]:
                samples[key].append(time_call(function, x))
    return {
        key: (statistics.median(times), len(times))
        for key, times in samples.items()
    }


def parse_shape(text):
    dims = tuple(int(d) for d in text.lower().split("x"))
    if len(dims) != 5 or min(dims) <= 0:
        raise argparse.ArgumentTypeError(
            f"A shape is BxTxHxWxC, five positive integers. Received: {text}"
        )
    return dims


def benchmark_shape(shape, filters, kernel_size, runs, max_seconds):
    """Times every variant on one shape; returns `{(name, pass): (s, n)}`."""
    # Not `keras.utils.set_random_seed`: it imports TensorFlow on any backend.
    filters = filters or shape[-1]
    variants = make_variants(filters, kernel_size, shape)
    x = np.random.default_rng(0).standard_normal(shape, dtype="float32")
    x = ops.convert_to_tensor(x)
    make_functions = BACKEND_FUNCTIONS[BACKEND]
    functions = {}
    for name, layer in variants.items():
        forward, forward_backward = make_functions(layer)
        functions[(name, "fwd")] = forward
        functions[(name, "fwd+bwd")] = forward_backward
    return filters, measure(functions, x, runs, max_seconds)


def print_table(shape, filters, kernel_size, times, runs):
    names = sorted({name for name, _ in times}, key=variant_order)
    print(
        f"\nshape B,T,H,W,C = {shape}, filters = {filters}, "
        f"kernel = {kernel_size}"
    )
    print(f"  {'variant':<18}{'fwd ms':>14}{'fwd+bwd ms':>16}")
    for name in names:
        cells = [format_time(*times[(name, p)], runs) for p in PASSES]
        print(f"  {name:<18}{cells[0]:>14}{cells[1]:>16}")
    print(f"  {'ratio':<44}{'fwd':>7}{'fwd+bwd':>9}  target (fwd+bwd)")
    results = []
    for numerator, denominator, target, label in TARGETS:
        forward, both = ratios(times, numerator, denominator)
        verdict = "PASS" if both <= target else "MISS"
        counts = [times[(n, "fwd+bwd")][1] for n in (numerator, denominator)]
        if min(counts) < runs:
            verdict += " (few runs)"
        results.append((label, both, target, verdict))
        print(
            f"  {label:<44}{forward:>7.3f}{both:>9.3f}  "
            f"<= {target:.2f} {verdict}"
        )
    for numerator, denominator, label in EXTRA_RATIOS:
        forward, both = ratios(times, numerator, denominator)
        print(f"  {label:<44}{forward:>7.3f}{both:>9.3f}  (info)")
    return results


def format_time(seconds, count, runs):
    """Milliseconds, with the run count when the time budget cut it."""
    text = f"{1e3 * seconds:.2f}"
    return text if count == runs else f"{text} (n={count})"


def ratios(times, numerator, denominator):
    return tuple(
        times[(numerator, p)][0] / times[(denominator, p)][0] for p in PASSES
    )


def variant_order(name):
    order = ("cbm", "cbm_cell", "limit", "paper", "paper_limit", "convlstm")
    base = name.removesuffix("_unroll")
    return (name.endswith("_unroll"), order.index(base))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Backend: set KERAS_BACKEND (tensorflow or jax).",
    )
    parser.add_argument(
        "--shapes",
        default=DEFAULT_SHAPES,
        help="comma-separated BxTxHxWxC input shapes "
        f"(default: {DEFAULT_SHAPES})",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=10,
        help="timed runs per variant; the median is reported (default: 10)",
    )
    parser.add_argument(
        "--filters",
        type=int,
        default=None,
        help="filters of every layer (default: the shape's channels C)",
    )
    parser.add_argument(
        "--kernel-size", type=int, default=3, help="square kernel (default: 3)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=30.0,
        help="time budget of one function's timed runs; a slower one gets "
        "fewer runs, shown as (n=...) (default: 30)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: shape {QUICK_SHAPE}, 3 runs (overrides --shapes "
        "and --runs); the verdicts mean nothing at that size",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.shapes, args.runs = QUICK_SHAPE, 3
    args.shapes = [parse_shape(s) for s in args.shapes.split(",")]
    if args.runs < 1 or args.max_seconds <= 0:
        parser.error("--runs and --max-seconds must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    if BACKEND not in BACKEND_FUNCTIONS:
        sys.exit(f"KERAS_BACKEND must be tensorflow or jax, not {BACKEND!r}")
    print(
        f"backend {BACKEND} (keras {keras.__version__}) on {device_name()}, "
        f"compiled with {COMPILATION[BACKEND]}\n"
        f"median of {args.runs} timed runs after {WARMUP_RUNS} warm-up runs; "
        "fwd+bwd = gradient of sum(outputs) w.r.t. trainable weights and "
        "input"
    )
    if BACKEND == "jax" and device_name().startswith("cpu"):
        print(
            "note: XLA on CPU back-propagates through a while loop "
            "(lax.scan) 15-32x slower;\n      the unroll=True rows show "
            "the layers without that loop"
        )
    all_results = []
    for shape in args.shapes:
        filters, times = benchmark_shape(
            shape, args.filters, args.kernel_size, args.runs, args.max_seconds
        )
        results = print_table(
            shape, filters, args.kernel_size, times, args.runs
        )
        all_results += [(shape,) + r for r in results]
    print("\nsummary (fwd+bwd):")
    for shape, label, value, target, verdict in all_results:
        shape_text = "x".join(map(str, shape))
        print(
            f"  {shape_text:<16}{label:<40}"
            f"{value:.3f} <= {target:.2f} {verdict}"
        )
    if BACKEND == "jax":
        # The JAX run must work where TensorFlow is not installed.
        print(f"tensorflow imported: {'tensorflow' in sys.modules}")


if __name__ == "__main__":
    main()
