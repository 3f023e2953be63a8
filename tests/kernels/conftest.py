import numba
import pytest
from backprop_bench.kernels import backend


@pytest.fixture(params=["numpy", "numba"])
def kernels(request):
    """Each backend in turn."""
    return backend(request.param)


@pytest.fixture
def numba_threads():
    """Restore numba's thread count after a test that changes it."""
    before = numba.get_num_threads()
    yield numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(before)
