"""The demo trainers' window cache: one folder per simulator version, loose files of the
older flat layout adopted when current, and `train-demo --prune-cache` freeing the rest.

Real renders (one 30 s session of physiology, cut by the live aligner) and real files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.demo_data import (
    CACHE_VERSION,
    SessionPlan,
    build_dataset,
    cache_path,
    prune_cache,
    version_dir,
)
from app.train_demo import main as train_demo
from models.registry import hi_moe_sim_inputs

PLAN = SessionPlan.for_seed(0, 0.5)


def test_windows_are_cached_in_this_versions_folder(tmp_path) -> None:
    first = build_dataset([PLAN], hi_moe_sim_inputs(), tmp_path, 1, False)
    path = cache_path(tmp_path, PLAN, hi_moe_sim_inputs())
    assert path.parent == tmp_path / f"v{CACHE_VERSION}" == version_dir(tmp_path)
    assert path.is_file() and len(first) > 0


def test_a_loose_file_of_the_flat_layout_is_adopted_not_rendered_again(tmp_path) -> None:
    """Caches written before version folders hold the version in their key: still valid."""
    first = build_dataset([PLAN], hi_moe_sim_inputs(), tmp_path, 1, False)
    path = cache_path(tmp_path, PLAN, hi_moe_sim_inputs())
    loose = tmp_path / path.name
    path.rename(loose)  # as an older affectlab left it
    inode = loose.stat().st_ino

    again = build_dataset([PLAN], hi_moe_sim_inputs(), tmp_path, 1, False)
    assert not loose.exists()
    assert path.stat().st_ino == inode  # moved in, not rendered again
    for key in first.keys:
        assert np.array_equal(first.x[key], again.x[key])
    assert np.array_equal(first.affect, again.affect)


def _write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    return path


def test_prune_frees_what_this_version_never_reads_and_nothing_else(tmp_path) -> None:
    cache = tmp_path / "cache"
    current = version_dir(cache)
    kept = [
        _write(current / "seed0_4min_0123456789ab.npz", 100),
        _write(cache / "notes.txt", 7),  # not the cache's: never touched
        _write(cache / "mine" / "seed1_4min_0123456789ab.npz", 9),
        _write(cache / "v2-backup" / "seed1_4min_0123456789ab.npz", 9),
    ]
    stale = [
        _write(current / "seed1_4min_0123456789ab.partial.npz", 30),  # an interrupted render
        _write(cache / f"v{CACHE_VERSION + 1}" / "seed1_4min_0123456789ab.npz", 200),
        _write(cache / "seed2_4min_0123456789ab.npz", 400),  # the flat layout's
    ]

    pruned = prune_cache(cache)

    assert sorted(pruned.removed) == sorted([stale[0], stale[1].parent, stale[2]])
    assert pruned.freed_bytes == 630
    assert all(p.is_file() for p in kept)
    assert not any(p.exists() for p in stale)
    assert prune_cache(cache).removed == ()  # nothing left to free


def test_prune_cache_command_says_what_it_freed(tmp_path, capsys) -> None:
    cache = tmp_path / "cache"
    loose = _write(cache / "seed2_4min_0123456789ab.npz", 2_000_000)
    current = _write(version_dir(cache) / "seed0_4min_0123456789ab.npz", 10)

    assert train_demo(["--prune-cache", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"removed {loose}" in out
    assert "freed 2.0 MB in 1 entries" in out
    assert not loose.exists() and current.is_file()

    # a cache folder that is not there is nothing to free, not an error
    assert train_demo(["--prune-cache", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "freed 0.0 MB in 0 entries" in capsys.readouterr().out
