"""`actavatar models tiny` (tested through actavatar.models_cli's own parser)."""

import pytest

from actavatar.models_cli import main


def test_tiny_only_subset(tmp_path, capsys):
    assert main(["tiny", "--out", str(tmp_path), "--only", "dit,umt5", "--seed", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dit", "umt5"]
    assert (tmp_path / "dit" / "model.safetensors").is_file() and (tmp_path / "umt5" / "tokenizer.json").is_file()
    assert "dit:" in capsys.readouterr().out


def test_tiny_rejects_unknown_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["tiny", "--out", str(tmp_path), "--only", "dit,gpt5"])
    assert "--only" in capsys.readouterr().err
