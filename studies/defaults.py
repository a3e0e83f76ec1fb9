"""One selection protocol for the CBM's default cell: every candidate on
every task family at once, chosen by its worst task.

Each candidate (`CANDIDATES`: the gated T with `recurrent_activation`
tanh or sigmoid and `merge` add or multiply; for the builders' models,
the batch normalisation (R's and T's input terms, R's only, none) and the
initializers (Keras', or the reference's gain-3 Xavier)) trains on the
task cells
(`TASK_CELLS`):

* `main_job`: `examples/action_recognition.py` at its defaults (its own
  settings and budget), test accuracy per video; `anticipation`:
  `examples/anticipation.py` likewise;
* `memory:TASK:DEPTH:READOUT`: `studies/memory_tasks.py`, order of events
  and 20-frame recall at depth 1 and 15 with the pooled and the flat
  readout (learning rate 3e-3; 1000 steps at depth 1, 600 at 15);
* `claim1:5`, `claim1:15`: claim (1)'s 5- and 15-layer rows of
  `studies/claims.py` (learning rate 3e-3);
* `prediction`: `examples/future_frame_prediction.py` on `moving_digits`,
  PSNR gain in dB over copying the last observed frame.

`--stage screen` runs one seed of the cheap, telling cells (`SCREEN`: the
main job, order of events at depth 1 pooled and at depth 15 flat) for
every candidate; `--stage full` runs every cell with `--seeds` seeds for
the `--candidates` given (the best two or three of the screen). Every run
is its own fresh process; its result goes to `studies/results/
defaults.json` as soon as it ends, and a run already there is not run
again: an interrupted protocol resumes where it stopped.

The choice: per cell, a candidate's shortfall is how far its mean falls
behind the best candidate's, as a share of the best one's distance from
the floor (chance, or 0 dB); the default is the candidate whose largest
shortfall over the cells is smallest, not the best on average.

    python studies/defaults.py --stage screen
    python studies/defaults.py --stage full --candidates tanh-add \\
        sigmoid-multiply --seeds 3
    python studies/defaults.py --quick      # smoke run, ~2 minutes
"""

import argparse
import fcntl
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# The harness the benchmarks and the studies share; it puts examples/ on
# the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import harness  # noqa: E402
import numpy as np  # noqa: E402

# The cell keywords each candidate changes from the layers' defaults (the
# gated T, Keras' initializers). `BUILDER_KEYWORDS` apply to the models of
# the builders and of claim 1 (the main job, anticipation, claim 1): batch
# normalisation, and their initializers ("reference": the reference's
# gain-3 Xavier, the builders' default before this protocol chose Keras').
# The candidates the screen measured under that default name it.
REFERENCE = {
    "kernel_initializer": "reference",
    "recurrent_initializer": "reference",
}
CANDIDATES = {
    "tanh-add": {},
    "tanh-add-reference-init": REFERENCE,
    "sigmoid-multiply": {
        "recurrent_activation": "sigmoid",
        "merge": "multiply",
    },
    "tanh-multiply": {"merge": "multiply"},
    "sigmoid-add": {"recurrent_activation": "sigmoid"},
    "tanh-add-no-bn": {"batch_norm": False, **REFERENCE},
    "tanh-add-bn-r": {"batch_norm": "representation", **REFERENCE},
    "tanh-add-orthogonal": {
        **REFERENCE,
        "recurrent_initializer": "orthogonal",
    },
    "sigmoid-multiply-orthogonal": {
        "recurrent_activation": "sigmoid",
        "merge": "multiply",
        **REFERENCE,
        "recurrent_initializer": "orthogonal",
    },
    "sigmoid-multiply-no-bn": {
        "recurrent_activation": "sigmoid",
        "merge": "multiply",
        "batch_norm": False,
    },
}
MEMORY_CELLS = tuple(
    f"memory:{task}:{depth}:{readout}"
    for task in ("order", "recall_20")
    for depth in (1, 15)
    for readout in ("pooled", "flat")
)
TASK_CELLS = (
    "main_job",
    "anticipation",
    *MEMORY_CELLS,
    "claim1:5",
    "claim1:15",
    "prediction",
)
SCREEN = ("main_job", "memory:order:1:pooled", "memory:order:15:flat")
MEMORY_STEPS = {1: 1000, 15: 600}
LEARNING_RATE = 3e-3
RESULTS = "defaults"
BUILDER_KEYWORDS = ("batch_norm", "kernel_initializer", "recurrent_initializer")
# The examples' own dataset folder, wherever the script is started.
DATA_DIR = str(harness.ROOT / "outputs" / "tensorflow_datasets")


def floor(cell):
    """The score of a model that learned nothing: chance, or 0 dB gain."""
    if builder_cell(cell):
        return 1 / 12  # motion_order's 12 classes.
    if cell.startswith("memory"):
        return 0.5
    return 0.0


def cell_flags(candidate, builder=True):
    """The example flags of a candidate's cell keywords; `builder=False`:
    without `BUILDER_KEYWORDS`."""
    flags = []
    keywords = CANDIDATES[candidate] if builder else cell_keywords(candidate)
    for name, value in keywords.items():
        if name == "batch_norm":
            flags.append(f"--batch-norm={str(value).lower()}")
        else:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def builder_cell(cell):
    """Whether the cell's model takes `BUILDER_KEYWORDS`."""
    return cell in ("main_job", "anticipation") or cell.startswith("claim1")


def run_key(candidate, cell, seed):
    """A run's key in the results file. Candidates that differ only in
    `BUILDER_KEYWORDS` share the runs of the other cells: the first
    candidate with the same cell keywords owns them."""
    if not builder_cell(cell):
        candidate = next(
            other
            for other in CANDIDATES
            if cell_keywords(other) == cell_keywords(candidate)
        )
    return f"{candidate}|{cell}|{seed}"


def cell_keywords(candidate):
    """A candidate's CBM cell keywords, without `BUILDER_KEYWORDS`."""
    return {
        name: value
        for name, value in CANDIDATES[candidate].items()
        if name not in BUILDER_KEYWORDS
    }


def classifier_job(candidate, seed, quick, config):
    """Test accuracy of the main job (or anticipation) for a candidate."""
    from action_recognition import parse_args
    from action_recognition import run

    with tempfile.TemporaryDirectory() as output:
        flags = [
            f"--seed={seed}",
            "--verbose=0",
            f"--output={output}",
            *cell_flags(candidate),
        ]
        if quick:
            flags += [
                f"--config={config}_small",
                "--frame-stride=2",
                "--min-length=4",
                "--max-length=8",
                "--min-overlap=1",
                "--stage-filters",
                "4",
                "--epochs=1",
                "--batch-size=4",
            ]
        args = parse_args(
            flags,
            config=config,
            data_dir=DATA_DIR,
        )
        return run(args)


def memory_job(candidate, cell, seed, quick):
    """Test accuracy of a memory task cell for a candidate."""
    import memory_tasks

    _, task, depth, readout = cell.split(":")
    depth = int(depth)
    args = memory_tasks.parse_args(["--quick"] if quick else [])
    if not quick:
        args.steps = MEMORY_STEPS[depth]
    data = [
        memory_tasks.make_task(task, count, data_seed)
        for data_seed, count in enumerate(
            (args.train_videos, args.val_videos, args.test_videos)
        )
    ]
    _, test = memory_tasks.train_and_score(
        args,
        cell_keywords(candidate),
        depth,
        readout,
        LEARNING_RATE,
        seed,
        data,
    )
    return test


def claim1_job(candidate, cell, seed, quick):
    """Test accuracy of claim (1)'s row of a depth for a candidate."""
    import claims

    args = claims.parse_args(
        ["--quick" if quick else f"--learning-rates={LEARNING_RATE}"]
        + [f"--data-dir={DATA_DIR}"]
    )
    for name, value in CANDIDATES[candidate].items():
        if name != "batch_norm":
            setattr(args, name, value)
    depth = int(cell.split(":")[1])
    if quick:
        depth = 2
    _, splits, frame_shape, max_steps = claims.motion_order(args)
    settings = {
        "depth": depth,
        "cell": "cbm",
        "scheme": "clips",
        "coherence": args.coherence_weight,
        "batch_norm": CANDIDATES[candidate].get("batch_norm", True),
    }
    run = claims.run_row(
        args, settings, LEARNING_RATE, *splits, frame_shape, max_steps, seed
    )
    return run["test_accuracy"]


def prediction_job(candidate, seed, quick):
    """PSNR gain (dB) of the future-frame predictor over copying the last
    observed frame, averaged over the predicted frames."""
    import future_frame_prediction

    with tempfile.TemporaryDirectory() as output:
        flags = [f"--seed={seed}", "--verbose=0", f"--output={output}"]
        flags += cell_flags(candidate, builder=False)
        flags.append(f"--data-dir={DATA_DIR}")
        if quick:
            flags += [
                "--config=small",
                "--depth=2",
                "--filters=4",
                "--encoder-filters",
                "4",
                "8",
                "--epochs=1",
                "--batch-size=3",
            ]
        means = future_frame_prediction.main(flags)
    return float(np.mean(means["psnr"]) - np.mean(means["copy_psnr"]))


def worker(candidate, cell, seed, quick):
    """One run: `{"score": ..., "seconds": ...}`."""
    import keras

    start = time.perf_counter()
    seed, quick = int(seed), quick == "quick"
    keras.utils.set_random_seed(seed)
    if cell in ("main_job", "anticipation"):
        config = "recognition" if cell == "main_job" else "anticipation"
        score = classifier_job(candidate, seed, quick, config)
    elif cell.startswith("memory"):
        score = memory_job(candidate, cell, seed, quick)
    elif cell.startswith("claim1"):
        score = claim1_job(candidate, cell, seed, quick)
    else:
        score = prediction_job(candidate, seed, quick)
    return {"score": float(score), "seconds": time.perf_counter() - start}


def summarise(runs, candidates, cells):
    """Mean, std and seeds of every candidate and cell run so far; among
    `candidates` run on all of `cells`, each one's worst shortfall behind
    the best, and the chosen one."""
    scores = {}
    for candidate in CANDIDATES:
        for cell in TASK_CELLS:
            values = [
                runs[key]["score"]
                for key in (run_key(candidate, cell, s) for s in range(99))
                if key in runs
            ]
            if values:
                scores.setdefault(candidate, {})[cell] = values
    table = {
        candidate: {
            cell: {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "seeds": len(values),
                "values": values,
            }
            for cell, values in by_cell.items()
        }
        for candidate, by_cell in scores.items()
    }
    complete = [
        candidate
        for candidate in candidates
        if set(cells) <= set(table.get(candidate, {}))
    ]
    worst = {}
    for candidate in complete:
        shortfalls = {}
        for cell in cells:
            best = max(table[other][cell]["mean"] for other in complete)
            room = max(best - floor(cell), 1e-9)
            shortfalls[cell] = (best - table[candidate][cell]["mean"]) / room
        cell = max(shortfalls, key=shortfalls.get)
        worst[candidate] = {"cell": cell, "shortfall": shortfalls[cell]}
    chosen = min(worst, key=lambda c: worst[c]["shortfall"]) if worst else None
    return {"table": table, "worst": worst, "chosen": chosen}


def markdown(summary, cells):
    lines = [
        "| candidate | " + " | ".join(cells) + " | worst shortfall |",
        "|---" * (len(cells) + 2) + "|",
    ]
    for candidate, row in summary["table"].items():
        entries = [
            f"{row[cell]['mean']:.3f} ± {row[cell]['std']:.3f} "
            f"(n={row[cell]['seeds']})"
            if cell in row
            else "–"
            for cell in cells
        ]
        worst = summary["worst"].get(candidate)
        entries.append(
            f"{worst['shortfall']:.0%} ({worst['cell']})" if worst else "–"
        )
        lines.append(f"| {candidate} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def write(path, commands, runs, args):
    """Writes the results file as it stands; returns its summary."""
    summary = summarise(runs, args.candidates, args.cells)
    harness.write_results(
        os.path.splitext(os.path.basename(path))[0],
        {"commands": commands, "runs": runs, **summary},
        folder=os.path.dirname(path),
    )
    return summary


def record(path, args, command, new_runs=None):
    """Merges `new_runs` and `command` into the results file under a lock,
    so that protocol processes started side by side (one per core) keep
    each other's runs; returns the merged runs, commands and summary."""
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs, commands = {}, []
        if os.path.exists(path):
            with open(path) as file:
                values = json.load(file)["values"]
            runs, commands = values["runs"], values.get("commands", [])
        runs.update(new_runs or {})
        # Every invocation whose runs the file holds (it resumes across them).
        if command not in commands:
            commands.append(command)
        return runs, commands, write(path, commands, runs, args)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--stage", choices=["screen", "full"], default="screen")
    add("--candidates", nargs="+", choices=CANDIDATES, default=None)
    add("--cells", nargs="+", choices=TASK_CELLS, default=None)
    add("--seeds", type=int, default=None, help="Screen 1, full 3.")
    add(
        "--from-seed",
        type=int,
        default=0,
        help="The first seed this process runs (processes side by side "
        "take different seeds).",
    )
    add("--quick", action="store_true", help="Smoke run, tiny settings.")
    add(
        "--results",
        default=None,
        help="Results file; default: studies/results/defaults.json "
        "(--quick: a temporary one).",
    )
    add("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    screen = args.stage == "screen"
    args.candidates = args.candidates or list(CANDIDATES)
    args.cells = args.cells or list(SCREEN if screen else TASK_CELLS)
    args.seeds = args.seeds or (1 if screen else 3)
    if args.quick:
        args.candidates = args.candidates[:2]
        args.cells = ["main_job", "memory:order:1:pooled", "claim1:5"]
        args.seeds = 1
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return harness.emit(worker(*args.worker))
    path = args.results or (
        os.path.join(tempfile.mkdtemp(), "defaults.json")
        if args.quick
        else str(harness.RESULTS / f"{RESULTS}.json")
    )
    command = " ".join(["python studies/defaults.py", *sys.argv[1:]])
    runs, _, summary = record(path, args, command)
    for seed in range(args.from_seed, args.seeds):
        for cell in args.cells:
            for candidate in args.candidates:
                key = run_key(candidate, cell, seed)
                if key in runs:
                    continue
                result = harness.run_fresh(
                    __file__,
                    [
                        "--worker",
                        key.split("|")[0],
                        cell,
                        str(seed),
                        "quick" if args.quick else "full",
                    ],
                )
                print(
                    f"{key}: {result['score']:.3f} "
                    f"({result['seconds'] / 60:.1f} min)",
                    flush=True,
                )
                runs, _, summary = record(path, args, command, {key: result})
    print(markdown(summary, args.cells))
    print(f"Chosen by the worst cell: {summary['chosen']}")
    print(f"Results: {path}")


if __name__ == "__main__":
    sys.exit(main())
