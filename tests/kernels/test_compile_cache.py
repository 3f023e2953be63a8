"""Same config, same numbers, whether the kernels were just compiled or loaded from numba's cache.

Found the hard way: with FMA contraction allowed in Adam's update (b1 m + (1 - b1) g has two
products to fuse), the freshly compiled kernel and the cached object code fused different ones,
and Adam's results moved by an ulp a step depending on whether a cache existed. Each run here is
a fresh process with its own empty cache directory (compile), then again with the same one
(load); every optimizer and both dtypes must give the same bits.
"""

import subprocess
import sys

import numpy as np
import pytest

# an integration test: `pytest -m "not slow"` leaves it out (see pyproject.toml)
pytestmark = pytest.mark.slow

_TRAIN = """
import sys, numpy as np
from backprop_bench.kernels import NetSpec, Optimizer, backend, get_problem, init_population
xor, out = get_problem("xor"), []
for spec, dtype in ((NetSpec((2, 4, 1)), np.float64), (NetSpec((2, 8, 6, 1), "tanh"), np.float32)):
    for name in ("sgd", "momentum", "adam"):
        theta = init_population(spec, 64, seed=3, dtype=dtype)
        result = backend("numba").train_population(theta, spec, xor.X, xor.Y, 0.3, 50,
                                                   optimizer=Optimizer(name), early_stop=False)
        out.append(result.theta.astype(np.float64).ravel())
np.save(sys.argv[1], np.concatenate(out))
"""


def _compiled_then_cached(tmp_path, script):
    """The arrays the script saves, run in a fresh process with an empty numba cache (compile),
    then again with the same cache (load)."""
    results = []
    for run in ("compiled", "cached"):
        path = tmp_path / f"{run}.npy"
        env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env)
        results.append(np.load(path))
    assert any((tmp_path / "cache").rglob("*.nbc"))  # the second run did load from a cache
    return results


def test_fresh_compile_and_cached_kernels_give_the_same_bits(tmp_path):
    compiled, cached = _compiled_then_cached(tmp_path, _TRAIN)
    np.testing.assert_array_equal(cached, compiled)



_GENERAL = """
import sys, numpy as np
from backprop_bench.kernels import NetSpec, backend, get_problem, init_population
xor, out, nb = get_problem("xor"), [], backend("numba")
for spec, batch in ((NetSpec((2, 8, 1), shortcut=True), None), (NetSpec((2, 8, 1)), 2),
                    (NetSpec((2, 8, 1), dropout=0.2, batchnorm=True), None)):
    theta = init_population(spec, 64, seed=3)
    result = nb.train_population(theta, spec, xor.X, xor.Y, 0.3, 50, batch_size=batch,
                                 early_stop=False)
    out.append(result.theta.ravel())
for spec in (NetSpec((2, 8, 1)), NetSpec((2, 8, 1), "tanh", shortcut=True)):
    theta = init_population(spec, 50, seed=0)
    out.append(np.asarray(nb.loss(theta, spec, xor.X, xor.Y)).ravel())
    out.append(np.asarray(nb.backward(theta, spec, xor.X, xor.Y).grad).ravel())
np.save(sys.argv[1], np.concatenate(out))
"""


def test_the_other_kernels_give_the_same_bits_compiled_or_cached(tmp_path):
    """The general kernel (shortcut nets, minibatches), the regularised one and the per-net
    passes: with reassociation allowed (fast-math reassoc), the per-net loss of 14 of 50 nets and
    most parameters of a shortcut population moved by an ulp between the two runs."""
    compiled, cached = _compiled_then_cached(tmp_path, _GENERAL)
    np.testing.assert_array_equal(cached, compiled)
