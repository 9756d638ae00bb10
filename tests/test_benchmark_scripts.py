"""The benchmark scripts refuse bad numbers up front, with argparse's usage error (exit 2),
before any peer runs."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script, argv, message", [
    ("trees.py", ["--batch-size", "0"], "--batch-size"),
    ("trees.py", ["--seed", "-1"], "--seed >= 0"),
    ("trees.py", ["--data", "/no/such/dir"], "no train.txt there"),
    ("loops.py", ["--repeats", "0"], "--repeats and --python-lanes must be >= 1"),
    ("loops.py", ["--python-lanes", "0"], "--repeats and --python-lanes must be >= 1"),
    ("item_assignment.py", ["--width", "0"], "--pairs, --width and --repeats must be >= 1"),
])
def test_a_bad_option_is_a_usage_error_before_any_peer_runs(script, argv, message):
    out = subprocess.run([sys.executable, str(BENCH / script), *argv], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and message in out.stderr and "error:" in out.stderr
