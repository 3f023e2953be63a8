"""The strongest JAX and PyTorch formulations (``fast_peers.py``), each held to the kernel's
final parameters, then timed under ``pytest --benchmark`` (group ``peers <spec>``).

Plain ``pytest`` checks each formulation once on 2-4-1, small (512 nets, 10 epochs); the wider
specs compile for minutes and are only run by ``pytest --benchmark``. The interleaved table
(ours against the best of these per spec) is ``python -m tests.benchmarks.peer_table``.
"""

from __future__ import annotations

import numpy as np
import pytest

from . import peer_table
from .peer_table import CASES, PARAMS_TOL

KEYS = list(peer_table.formulations(CASES["2-4-1"].spec))
SMALL_NETS, SMALL_EPOCHS = 512, 10


# torch.compile goes through torch.jit, which warns that it is deprecated
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("name", list(CASES))
def test_peer_formulation(benchmark, name, key):
    case = CASES[name]
    label, library, factory = peer_table.formulations(case.spec, small=benchmark.disabled)[key]
    pytest.importorskip(library, reason=f"{library} is not installed: pip install -e '.[peers]'")
    if benchmark.disabled and name != "2-4-1":
        pytest.skip("wide specs compile for minutes: timed and checked by pytest --benchmark")
    if not fast_peers_ready(library):
        pytest.skip("jax was imported before XLA_FLAGS asked for two host devices")
    n_nets = peer_table.N_NETS if not benchmark.disabled else SMALL_NETS
    n_epochs = case.n_epochs if not benchmark.disabled else SMALL_EPOCHS
    X, Y = peer_table.data_for(case.spec)
    theta = peer_table.theta_for(name, n_nets)
    expected = peer_table.ours(case.spec, X, Y)(theta, n_epochs)
    train = factory(case.spec, X, Y)
    got = train(theta, n_epochs)  # compiles, then checked
    np.testing.assert_allclose(got, expected, rtol=0, atol=PARAMS_TOL, err_msg=label)
    benchmark.group = f"peers {name}, float64"
    benchmark.pedantic(train, (theta, n_epochs), rounds=3)
    benchmark.extra_info.update(impl=f"peer {name} {key}", label=label, spec=name, n_nets=n_nets,
                                n_epochs=n_epochs)  # fmt: skip


def fast_peers_ready(library):
    if library != "jax":
        return True
    import jax

    return jax.device_count() >= 2
