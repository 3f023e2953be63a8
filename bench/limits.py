"""Memory a command will need, estimated before anything is allocated.

A run that cannot fit is refused up front, in one line naming the size and the fix, instead of
dying in NumPy's allocator (or the kernel) minutes later. The estimates count the arrays a run
holds at its peak, by their shapes; they are upper bounds within a small factor, not
measurements, and the limit is the memory the machine has available now.
"""

from __future__ import annotations

import os

from backprop_bench.kernels import NetSpec, get_problem
from backprop_bench.kernels.training import record_epochs

GIB = 2**30
# the numba kernel trains at least one chunk of 16 lanes, however few nets it is given
MIN_NETS = 16
# Arrays of theta's shape alive at once while training: the initial theta, the result's copy,
# the working parameters, gradient, two optimizer states and the step's temporaries.
THETA_COPIES = 8
# Per-layer activations, pre-activations and gradients, with the NumPy backend's temporaries.
ACTIVATION_COPIES = 6
HISTORY_ARRAYS = 4  # loss, accuracy, gradient norm, parameter norm
# A sweep's merged results: 13 per-net columns of 8 bytes, a row of text in the CSV (about 120
# bytes, held twice while compressed) and the loss curve's points in float32.
RESULT_BYTES_PER_NET = 13 * 8 + 2 * 120


def available_bytes() -> int:
    """Memory available to a new allocation now (MemAvailable on Linux, else all of it)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return 2**63


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:,.1f} GiB" if n_bytes >= GIB / 10 else f"{n_bytes / 2**20:,.1f} MiB"


def check(needed: int, what: str, fix: str) -> None:
    """Refuse with one line if ``needed`` bytes exceed the memory available."""
    available = available_bytes()
    if needed > available:
        raise ValueError(f"{what} needs about {_gib(needed)} of memory, more than the "
                         f"{_gib(available)} available; {fix}")  # fmt: skip


def training_bytes(spec: NetSpec, n_nets: int, n_samples: int, n_epochs: int,
                   record_every: int, itemsize: int = 8) -> int:  # fmt: skip
    """Peak bytes of ``train_population`` for ``n_nets`` nets (at least a chunk of lanes)."""
    nets = max(n_nets, MIN_NETS)
    per_net = THETA_COPIES * spec.n_params
    per_net += ACTIVATION_COPIES * n_samples * sum(spec.layers[1:])
    n_records = _n_records(n_epochs, record_every)
    return (per_net + HISTORY_ARRAYS * n_records) * nets * itemsize + n_records * 8


def _n_records(n_epochs: int, record_every: int) -> int:
    if record_every <= 0:
        return 0
    n = n_epochs // record_every + 2
    return n if n > 10_000 else record_epochs(n_epochs, record_every).size


def check_train(config) -> None:
    """``backprop-bench train``'s config (a TrainConfig)."""
    itemsize = 4 if config.dtype == "float32" else 8
    needed = training_bytes(config.spec, 1, config.data.X.shape[0], config.epochs, config.every,
                            itemsize)  # fmt: skip
    check(needed, f"training a {config.spec.describe()} net for {config.epochs:,} epochs "
          f"(statistics every {config.every:,})",
          "use fewer or narrower layers, fewer --epochs or a larger --every")  # fmt: skip


def check_sweep(config) -> None:
    """A sweep: one shard in training plus every net's merged results."""
    # the cell whose shard needs the most: the most parameters times samples
    cell = max(
        config.cells(), key=lambda c: config.spec(c).n_params * get_problem(c.problem).X.shape[0]
    )
    problem = get_problem(cell.problem)
    shard = training_bytes(config.spec(cell), min(config.nets_per_shard, config.nets_per_cell),
                           problem.X.shape[0], config.epochs, config.record_every)  # fmt: skip
    per_net = RESULT_BYTES_PER_NET + 4 * config.curve_rows().size + 8 * config.n_values
    results = config.n_nets() * per_net
    lone = training_bytes(config.spec(cell), 1, problem.X.shape[0], config.epochs,
                          config.record_every)  # fmt: skip
    if lone > available_bytes():  # no number of nets fits: the widths do not
        check(lone, f"training {MIN_NETS} nets of {config.spec(cell).describe()} "
              f"({cell.problem})", "use smaller --hidden widths")  # fmt: skip
    check(shard + results, f"a sweep of {config.n_nets():,} nets "
          f"({config.nets_per_shard:,} per shard)",
          "use fewer nets per cell (--nets-per-cell), a smaller grid or a smaller "
          "--nets-per-shard")  # fmt: skip


def check_vanishing(config) -> None:
    """The vanishing study: its largest case's forward and backward pass over all nets."""
    n_samples = get_problem(config.problem).X.shape[0]
    depth = max(config.depths)
    problem = get_problem(config.problem)
    n_params = (problem.n_inputs * config.width + config.width
                + (depth - 1) * (config.width**2 + config.width) + config.width + 1)  # fmt: skip
    per_net = 3 * n_params + 3 * ACTIVATION_COPIES * n_samples * depth * config.width
    check(per_net * config.n_nets * 8, f"the vanishing study ({config.n_nets:,} nets of up to "
          f"{depth} layers of {config.width})",
          "use fewer --nets, fewer --depths or a smaller --width")  # fmt: skip
