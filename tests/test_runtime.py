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
