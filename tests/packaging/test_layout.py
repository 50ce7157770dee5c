"""The generic top-level names (dataset, model, train, ...) must resolve to this repository."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("actavatar", "annotate", "dataset", "train", "model", "evaluation")


@pytest.mark.parametrize("name", PACKAGES)
def test_top_level_package_resolves_to_this_repo(name):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == REPO / name


def test_distribution_ships_every_package_and_the_console_script():
    dist = importlib.metadata.distribution("actavatar")
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts["actavatar"] == "actavatar.cli:main"
    # Editable installs record a finder mapping each top-level name to its folder here.
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and Path(spec.origin).resolve().is_relative_to(REPO), name


def test_no_other_installed_distribution_provides_our_top_level_names():
    clashes = {}
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"] == "actavatar":
            continue
        top = (dist.read_text("top_level.txt") or "").split()
        for name in set(top) & set(PACKAGES):
            clashes.setdefault(name, []).append(dist.metadata["Name"])
    assert not clashes, f"installed distributions also provide {clashes}"
