"""`benchmarks/gpu_speed.py --quick` end to end on JAX, with TensorFlow
made unimportable as on the GPU machine (about a minute on 2 CPU cores)."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
)
WITHOUT_TENSORFLOW = textwrap.dedent(
    """
    import runpy, sys

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ImportError("TensorFlow is not installed here")

    sys.meta_path.insert(0, NoTensorFlow())
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
)
NUMBER = r"(\d+\.\d+)"


def table_rows(output, header_start):
    """The data rows of the markdown table whose header starts so."""
    lines = output.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith(header_start)
    )
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.split("|")[1:-1]])
    return rows


@pytest.mark.benchmark
def test_quick_run_measures_everything_without_tensorflow():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_TENSORFLOW,
            os.path.join(ROOT, "benchmarks", "gpu_speed.py"),
            "--quick",
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "KERAS_BACKEND": "jax",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": ROOT,
        },
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout

    layers = table_rows(output, "| shape B,T,H,W,C")
    assert [row[:2] for row in layers] == [
        ["2x4x8x8x4", "float32"],
        ["2x4x8x8x4", "mixed_bfloat16"],
    ]
    for row in layers:
        cbm, limit, convlstm, unroll, rgated = map(float, row[2:7])
        assert min(cbm, limit, convlstm, unroll, rgated) > 0
        # The printed ratios are those of the printed times.
        expected = [cbm / limit, cbm / convlstm, unroll / limit]
        expected.append(rgated / convlstm)
        assert list(map(float, row[7:])) == pytest.approx(
            expected, abs=0.02, rel=0.02
        )

    stack = table_rows(output, "| precision |")
    assert [row[0] for row in stack] == ["float32", "mixed_bfloat16"]
    for row in stack:
        cbm, convlstm, ratio = map(float, row[1:])
        assert ratio == pytest.approx(cbm / convlstm, abs=0.02, rel=0.02)

    (step,) = table_rows(output, "| CoherenceModel, gated CBM")
    cbm, convlstm, plain, to_convlstm, to_plain = map(float, step)
    assert min(cbm, convlstm, plain) > 0
    assert to_plain == pytest.approx(cbm / plain, abs=0.02, rel=0.02)

    verdicts = re.findall(NUMBER + r" <= " + NUMBER + r" (PASS|MISS)", output)
    # 2 precisions x (2 layer targets + 1 stack target).
    assert len(verdicts) == 6
    for ratio, target, verdict in verdicts:
        assert (verdict == "PASS") == (float(ratio) <= float(target))
    assert "tensorflow imported: False" in output
