"""First-call cost of the numba kernel backend: cold (empty kernel cache) and warm (new process).

Each measurement runs in a fresh Python process with ``VMAPPER_CACHE_DIR`` pointing at a
temporary directory: the first process compiles (cold), the second finds the cached kernels
on disk (warm; ``cache.stats['compiled']`` must be 0 there).  Prints medians over ``--repeats``
fresh cache directories.

    python benchmarks/compile_cost.py [--repeats 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r'''
import json, time
import numpy as np
t0 = time.perf_counter()
import vmapper
from vmapper.kernels import cache
from vmapper.testing.programs import collatz_steps, escape_time
t_import = time.perf_counter() - t0
out = {"import": t_import}
for name, fn, args in (("collatz", collatz_steps, (np.arange(1, 1000),)),
                       ("mandelbrot", escape_time, (np.zeros(100), np.zeros(100)))):
    f = vmapper.batched(fn, backend="numba")
    t = time.perf_counter(); f(*args); out[name] = time.perf_counter() - t
    assert f.last_stats["kernel_launches"] == 1
    t = time.perf_counter(); f(*args); out[name + "_again"] = time.perf_counter() - t
out["compiled"] = cache.stats["compiled"]
print(json.dumps(out))
'''


def run_child(cache_dir):
    env = dict(os.environ, VMAPPER_CACHE_DIR=cache_dir)
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            cold.append(run_child(d))
            warm.append(run_child(d))
    print(f"median over {args.repeats} fresh caches (seconds; first call includes compilation or cache load)")
    print(f"{'':12} {'import':>8} {'collatz 1st':>12} {'mandel 1st':>11} {'2nd call':>9} {'compiled':>9}")
    for label, rows in (("cold", cold), ("warm", warm)):
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"{label:12} {med['import']:8.2f} {med['collatz']:12.2f} {med['mandelbrot']:11.2f} "
              f"{med['collatz_again']:9.4f} {med['compiled']:9.0f}")
    print(f"warm/cold first-call ratio (collatz + mandelbrot): "
          f"{statistics.median(w['collatz'] + w['mandelbrot'] for w in warm) / statistics.median(c['collatz'] + c['mandelbrot'] for c in cold):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
