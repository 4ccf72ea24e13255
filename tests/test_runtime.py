"""One cache root (minimax.runtime.cache_root) for the JAX compilation cache and the
validation's model cache; ``MINIMAX_CACHE=off`` turns both off and creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from minimax.runtime import cache_root, enable_compilation_cache
from minimax.validate._cache import cache_dir


@pytest.mark.parametrize("value", ["off", "OFF", " Off "])
def test_cache_off_creates_no_directory(tmp_path, monkeypatch, value):
    monkeypatch.setenv("MINIMAX_CACHE", value)
    monkeypatch.chdir(tmp_path)
    assert cache_root() is None and enable_compilation_cache() is None
    scratch = cache_dir()  # the model cache still needs somewhere to build: a temporary dir
    assert scratch.is_dir() and tmp_path not in scratch.parents
    assert list(tmp_path.iterdir()) == []  # no directory named "off" (or anything else) here


def test_both_caches_share_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMAX_CACHE", str(tmp_path / "root"))
    assert cache_root() == tmp_path / "root"
    assert cache_dir() == tmp_path / "root" and (tmp_path / "root").is_dir()
    monkeypatch.setenv("MINIMAX_CACHE", "")
    assert cache_root() == Path.home() / ".cache" / "minimax"


def test_compilation_cache_reads_and_writes_under_a_lock(tmp_path):
    """Unbounded, JAX writes cache entries in place with no lock (a reader racing a writer
    can crash); bounded, every entry is written and read holding ``<dir>/.lockfile`` and gets an
    access-time file. Compile one function in a fresh process and look at the directory."""
    import subprocess
    import sys

    code = (
        "import jax, jax.numpy as jnp\n"
        "from minimax.runtime import enable_compilation_cache\n"
        "path = enable_compilation_cache()\n"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)\n"
        "print(jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.arange(3.0)).sum())\n"
        "print(path)\n"
    )
    env = {**__import__("os").environ, "MINIMAX_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    path = Path(out[-1])
    assert path == tmp_path / "jax-lru"
    names = [p.name for p in path.iterdir()]
    entries = [n for n in names if n.endswith("-cache")]
    assert entries, names
    assert ".lockfile" in names
    assert all(n.removesuffix("-cache") + "-atime" in names for n in entries)
