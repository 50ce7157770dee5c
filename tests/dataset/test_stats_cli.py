from __future__ import annotations

import json
import subprocess
import sys

from actavatar.cli import main
from dataset.stats import corpus_stats


def test_stats_figures(toy_corpus):
    stats = corpus_stats(toy_corpus)
    assert stats["clips"] == 6 and stats["candidates"] == 8 and stats["shards"] == 2
    assert stats["status"] == {"ok": 6, "rejected": 2}
    assert abs(stats["hours"] - 6 * 1.2 / 3600) < 1e-4
    assert stats["rejection_reasons"] == {"rejected: no_face": 1, "rejected: too_short": 1}
    assert 1 <= stats["phases_per_clip"]["min"] <= stats["phases_per_clip"]["max"] <= 3
    assert stats["words_per_clip"]["min"] >= 2


def test_stats_table_and_json(toy_corpus, capsys):
    assert main(["data", "stats", str(toy_corpus)]) == 0
    table = capsys.readouterr().out
    assert "clips kept                 6" in table and "rejected: no_face" in table
    assert main(["data", "stats", str(toy_corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clips"] == 6


def test_stats_on_missing_manifest_is_clean(tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path)]) == 2
    assert "manifest not found" in capsys.readouterr().err


def test_console_script_help_lists_only_built_groups():
    out = subprocess.run([sys.executable, "-m", "actavatar", "--help"], check=True, capture_output=True, text=True).stdout
    assert "data" in out
    sub = subprocess.run([sys.executable, "-m", "actavatar", "data", "--help"], check=True, capture_output=True, text=True).stdout
    assert "validate" in sub and "stats" in sub


def test_package_cli_runs_standalone(toy_corpus):
    proc = subprocess.run([sys.executable, "-m", "dataset.cli", "validate", str(toy_corpus)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "VALID" in proc.stdout
