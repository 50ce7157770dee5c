"""Entrypoint smoke tests: `python -m train.cli` / `actavatar train` and `actavatar encode` (the
latter runs in the `latents` fixture)."""

from tests.train.conftest import fast_overrides
from train.cli import main


def test_train_cli_in_process(latents, tmp_path, capsys):
    argv = ["--config", "configs/train/stage1_debug.yaml", f"data.shards={latents}", "data.kind=latents", *fast_overrides(tmp_path, 2)]
    assert main(argv) == 0
    assert '"step": 2' in capsys.readouterr().out
    assert (tmp_path / "final/config.json").is_file()
    # a second call resumes at step 2 and has nothing left to do
    assert main(argv) == 0


def test_train_cli_user_errors(tmp_path, capsys):
    assert main(["--config", "configs/train/stage1_debug.yaml", "optim.lr=-1", f"output_dir={tmp_path}"]) == 2
    assert "optim.lr must be > 0" in capsys.readouterr().err
    assert main(["--config", "configs/train/stage1_debug.yaml", "data.buckets=[10x32x32]", f"output_dir={tmp_path}"]) == 2
    assert "1 + 4k" in capsys.readouterr().err


def test_actavatar_lists_train_and_encode(capsys):
    from actavatar.cli import build_parser

    help_text = build_parser().format_help()
    assert "train" in help_text and "encode" in help_text
