"""What the benchmarks (`benchmarks/`) and the studies (`studies/`) share:
the main job's settings, fresh-process runs with JSON out, resident-memory
measurements, the benchmarks' PASS/MISS verdicts and the studies' results
files that README and docs/ quote (`write_results`). It is the one harness
of both folders: a study puts `benchmarks/` on its path to import it.

Importing it has no side effect and loads neither Keras nor TensorFlow (the
GPU machine has no TensorFlow).

A script runs each configuration in a fresh process (`run_fresh`: the
script again with `--worker ARGS...`, whose last stdout line is JSON, see
`emit`), so that one configuration's memory or traced graphs do not leak
into the next:

    if args.worker:
        return harness.emit(worker(*args.worker))
    result = harness.run_fresh(__file__, ["--worker", "clips", "64"])
"""

import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The results files: every figure README and docs/ quote is read from one
# (`tests/figures_test.py` checks the quotes against them).
RESULTS = ROOT / "studies" / "results"
# Scripts run from a checkout without installing the package; the main job's
# flags come from the example itself.
for path in (str(ROOT), str(ROOT / "examples")):
    if path not in sys.path:
        sys.path.insert(0, path)


def main_job():
    """The main job's settings (`examples/action_recognition.py` at its
    default flags), as the benchmarks and the studies build its batches
    and classifier.

    Returns:
        A dict: `flags` (the job's parsed default flags), `videos` (videos
        per batch), `clips` (clips per video), `steps` (longest clip),
        `frame_shape` (`(size, size, channels)`, grayscale: 1 channel),
        `classes` (motion_order's 12), `stage_filters`, and `clip_arguments`
        (the `overlapping_clips` arguments of its clips).
    """
    from action_recognition import parse_args

    flags = parse_args([])
    channels = 1 if flags.color_mode == "grayscale" else 3
    # `--frame-size` defaults to motion_order's own size, 32.
    size = flags.frame_size or 32
    return {
        "flags": flags,
        "videos": flags.batch_size,
        "clips": flags.clips_per_video,
        "steps": flags.max_length,
        "frame_shape": (size, size, channels),
        "classes": 12,
        "stage_filters": tuple(flags.stage_filters),
        "clip_arguments": {
            "clips_per_video": flags.clips_per_video,
            "min_length": flags.min_length,
            "max_length": flags.max_length,
            "min_overlap": flags.min_overlap,
            "frame_stride": flags.frame_stride,
        },
    }


def emit(result):
    """Prints a worker's result as the JSON line `run_fresh` reads."""
    print(json.dumps(result), flush=True)


def run_fresh(script, arguments, env=None):
    """Runs `script` with `arguments` in a fresh Python process.

    Large allocations go back to the system when freed
    (`MALLOC_MMAP_THRESHOLD_`), so that a peak of resident memory is the
    configuration's own, not memory an earlier step left in the heap.

    Args:
        script: Path of the script (usually `__file__`).
        arguments: Its command-line arguments.
        env: Variables to set on top of this process's environment.

    Returns:
        The JSON value of the last line the process printed.
    """
    environment = {
        **os.environ,
        # As `fresh_heap` does.
        "MALLOC_MMAP_THRESHOLD_": "65536",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(env or {}),
    }
    output = subprocess.run(
        [sys.executable, str(script), *arguments],
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def fresh_heap():
    """Restarts this script (`os.execv`, same arguments) with
    `MALLOC_MMAP_THRESHOLD_` set, unless it is set already.

    Large allocations then go back to the system when freed, so that the
    resident-memory peak of one measurement is not hidden by memory an
    earlier one in the same process left in the heap. Call it first in a
    script's `if __name__ == "__main__":` block, never at import.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, *sys.argv])


def resident_bytes(pid="self"):
    """The resident memory of a process and all its descendants (e.g. the
    processes that decode video files), in bytes (Linux' `/proc`)."""
    total = 0
    try:
        with open(f"/proc/{pid}/statm") as statm:
            total = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children") as children:
                total += sum(
                    resident_bytes(child) for child in children.read().split()
                )
    except OSError:
        pass  # The process (or a thread) ended while it was read.
    return total


class PeakMemory:
    """Peak resident memory while the block runs, above that at its start,
    sampled in a thread every `interval` seconds; `bytes` after the block.
    """

    def __init__(self, interval=0.001):
        self.interval = interval

    def __enter__(self):
        self.base = self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, resident_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())
        self.bytes = self.peak - self.base


def verdict(value, goal, at_most=True):
    """`"PASS"` when `value` meets the goal (`<= goal`, or `>= goal` with
    `at_most=False`), else `"MISS"`."""
    met = value <= goal if at_most else value >= goal
    return "PASS" if met else "MISS"


def check(name, value, goal, at_most=True, unit="x"):
    """Prints `name: VALUE (goal <= GOAL): PASS` (or `>=`, `MISS`)."""
    sign = "<=" if at_most else ">="
    print(
        f"{name}: {value:.2f}{unit} (goal {sign} {goal:g}{unit}): "
        f"{verdict(value, goal, at_most)}",
        flush=True,
    )


def _versions():
    versions = {}
    for package in ("keras-cbm", "keras", "keras-nightly", "tensorflow", "jax"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if commit:
        versions["keras_cbm commit"] = commit
    return versions


def add_results_flag(parser):
    """Adds a study's `--results-dir` flag (see `results_folder`)."""
    parser.add_argument(
        "--results-dir",
        default=None,
        help="Where the results file goes; default: studies/results/ "
        "(with --quick: a temporary folder).",
    )


def results_folder(args):
    """Where a study writes its results file: `args.results_dir` if given,
    else `studies/results/`, or a temporary folder for a `--quick` run (a
    smoke run never replaces the figures the docs quote)."""
    if args.results_dir:
        return Path(args.results_dir)
    if getattr(args, "quick", False):
        return Path(tempfile.mkdtemp())
    return RESULTS


def write_results(name, values, argv=None, folder=RESULTS):
    """Writes `<folder>/<name>.json` (`studies/results/` by default):
    `values` with the command that measured them, the date and the package
    versions.

    Args:
        name: The file's name, without `.json`.
        values: JSON-serialisable results (numbers the docs quote).
        argv: The script's arguments; default: this process's.
        folder: Where to write it.

    Returns:
        The path written.
    """
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    arguments = sys.argv[1:] if argv is None else list(argv)
    path = Path(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as file:
        json.dump(
            {
                "command": " ".join(["python", str(script), *arguments]),
                "date": datetime.date.today().isoformat(),
                "versions": _versions(),
                "values": values,
            },
            file,
            indent=1,
        )
        file.write("\n")
    return path
