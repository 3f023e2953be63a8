"""The project installs beside other distributions that own the names kernels, verify and bench.

The repository keeps its parts in top-level folders, but they must install as
``backprop_bench.kernels`` and so on: the package index has unrelated distributions called
``kernels``, ``verify`` and ``bench``, and two distributions writing ``site-packages/kernels/``
break each other. Each test makes a fresh virtual environment, installs the project (a built
wheel, ``pip install .``, ``pip install -e .``) before or after distributions that own those three
names, and runs the command and the public API there. The project's dependencies (NumPy, numba,
...) are taken from the environment running the tests through a ``.pth`` line placed after the
fresh environment's own site-packages, so nothing is downloaded but the build backend.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

# an integration test: `pytest -m "not slow"` leaves it out (see pyproject.toml)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CLASHING = ("kernels", "verify", "bench")
MARK = "a distribution that is not backprop-bench"

API_CHECK = f"""
import backprop_bench, kernels, verify, bench
from backprop_bench import NetSpec, backend, check_gradient, get_problem, init_population
for name in ("kernels", "verify", "bench"):
    assert getattr(__import__(name), "MARK", None) == "{MARK}", name
spec = NetSpec((2, 4, 1))
xor = get_problem("xor")
theta = init_population(spec, 3, seed=0)
assert backend("numpy").loss(theta, spec, xor.X, xor.Y).shape == (3,)
print("api ok", backprop_bench.__file__)
"""


LOSS_ULPS = 8  # fresh and cached kernels' losses agree to a few ulps (see the cache test below)
NUMBA_LOSS = """
from backprop_bench import NetSpec, backend, get_problem, init_population
spec, xor = NetSpec((2, 4, 1)), get_problem("xor")
print(backend("numba").loss(init_population(spec, 8, seed=0), spec, xor.X, xor.Y).tolist())
"""


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _pip(python, *args):
    return _run([sys.executable, "-m", "pip", "--python", str(python), "--quiet", *args])


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """A local distribution that owns the top-level packages kernels, verify and bench."""
    root = tmp_path_factory.mktemp("stand_ins")
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "clashing-names"
            version = "1.0"
            [tool.setuptools]
            packages = ["kernels", "verify", "bench"]
            """
        )
    )
    for name in CLASHING:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f'MARK = "{MARK}"\n')
    return root


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The project built as a wheel, the way it is published."""
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)])
    (built,) = out.glob("backprop_bench-*.whl")
    return built


def _fresh_venv(path):
    """A new environment with the test runner's site-packages appended, for the dependencies."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    python = path / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([python, "-c", where]).strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return python, site


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NUMBA_"))}
    env.update(extra)
    return env


def _check(python, site, cwd, **env_extra):
    env = _clean_env(**env_extra)
    out = _run([python, "-c", API_CHECK], cwd=cwd, env=env)
    assert "api ok" in out
    for name in CLASHING:  # the other distribution's files are untouched
        assert (site / name / "__init__.py").read_text() == f'MARK = "{MARK}"\n'
    command = [python.parent / "backprop-bench", "train", "--epochs", "10"]
    return env, command


@pytest.mark.parametrize("order", ["clashing first", "clashing after"])
def test_wheel_installs_beside_clashing_names_and_uses_numba_cache(
    tmp_path, stand_ins, wheel, order
):
    python, site = _fresh_venv(tmp_path / "venv")
    installs = [[str(stand_ins)], [str(wheel)]]
    for what in installs if order == "clashing first" else installs[::-1]:
        _pip(python, "install", "--no-deps", *what)
    env, command = _check(python, site, tmp_path)
    out = _run([*command, "--backend", "numpy"], cwd=tmp_path, env=env)
    assert "epoch" in out.lower()
    if order == "clashing after":
        return
    # numba's cache sits beside the installed modules and a fresh process loads it (a small
    # kernel: compiling the fused training kernel cold would cost half a minute)
    first = _run([python, "-c", NUMBA_LOSS], cwd=tmp_path, env=env)
    assert list((site / "backprop_bench" / "kernels").glob("__pycache__/*.nbi"))
    second = subprocess.run(
        [python, "-c", NUMBA_LOSS], capture_output=True, text=True, cwd=tmp_path,
        env={**env, "NUMBA_DEBUG_CACHE": "1"},
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "data loaded from" in second.stdout + second.stderr
    assert "data saved to" not in second.stdout + second.stderr
    # the same numbers; not always the same last bit: the loss kernel freshly compiled and
    # loaded from the cache have been seen to differ by an ulp (FMA contraction, as Adam's
    # update once did), which the project's reproducibility contract does not yet cover
    fresh, cached = (np.array(eval(out.splitlines()[-1])) for out in (first, second.stdout))
    np.testing.assert_allclose(cached, fresh, rtol=LOSS_ULPS * np.finfo(np.float64).eps)


@pytest.mark.parametrize("editable", [False, True], ids=["pip install .", "pip install -e ."])
def test_source_installs_beside_clashing_names(tmp_path, stand_ins, editable):
    python, site = _fresh_venv(tmp_path / "venv")
    source = tmp_path / "src"  # a copy, so the build leaves no files in the repository
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".*venv*",
            "reports",
            "*.egg-info",
            "__pycache__",
            "build",
            ".benchmarks",
            ".pytest_cache",
            ".ruff_cache",
        ),
    )
    _pip(python, "install", "--no-deps", str(stand_ins))
    _pip(python, "install", "--no-deps", *(["-e"] if editable else []), str(source))
    env, command = _check(python, site, tmp_path)
    out = _run([*command, "--backend", "numpy"], cwd=tmp_path, env=env)
    assert "epoch" in out.lower()
    module = _run(
        [python, "-m", "backprop_bench", "train", "--epochs", "10", "--backend", "numpy"],
        cwd=tmp_path,
        env=env,
    )
    assert module == out  # python -m backprop_bench is the same command


def test_wheel_ships_the_live_page(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ("index.html", "live.css", "live.js"):
        assert f"backprop_bench/bench/live_assets/{asset}" in names


def _tree_digest(site, names):
    """Every file the given top-level names own in site-packages, with its bytes."""
    found = {}
    for name in names:
        for path in sorted((site / name).rglob("*")) if (site / name).is_dir() else []:
            if path.is_file() and "__pycache__" not in path.parts:
                found[str(path.relative_to(site))] = path.read_bytes()
        for path in site.glob(f"{name}.py"):
            found[path.name] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def index_distributions(tmp_path_factory):
    """The package index's own kernels, verify and bench, downloaded once (no dependencies:
    only their files matter here)."""
    out = tmp_path_factory.mktemp("index")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(out),
         *CLASHING],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"the package index cannot be reached to download {CLASHING}: {last}")
    return sorted(str(p) for p in out.iterdir())


@pytest.mark.parametrize("order", ["index first", "index after"])
def test_wheel_installs_beside_the_package_index_kernels_verify_and_bench(
    tmp_path, index_distributions, wheel, order
):
    python, site = _fresh_venv(tmp_path / "venv")
    installs = [index_distributions, [str(wheel)]]
    before = None
    for what in installs if order == "index first" else installs[::-1]:
        _pip(python, "install", "--no-deps", *what)
        if what is index_distributions:
            before = _tree_digest(site, CLASHING)
    assert before, "the package index's distributions installed no files of those names"
    assert _tree_digest(site, CLASHING) == before  # theirs, untouched by ours
    env = _clean_env()
    check = "import backprop_bench\n" + "\n".join(
        line for line in API_CHECK.splitlines()
        if "kernels, verify, bench" not in line and "MARK" not in line and "for name in" not in line
    )  # theirs are imported by nobody here: they need their own dependencies
    assert "api ok" in _run([python, "-c", check], cwd=tmp_path, env=env)
    out = _run([python.parent / "backprop-bench", "train", "--epochs", "10", "--backend",
                "numpy"], cwd=tmp_path, env=env)  # fmt: skip
    assert "epoch" in out.lower()
