"""Command runner: user errors are one line and exit 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse

import pytest

from dataset.command import run_command
from dataset.config_loader import ConfigError
from dataset.errors import UserError
from dataset.media import MediaError


def _args(exc: BaseException, traceback: bool = False) -> argparse.Namespace:
    def fail(_args):
        raise exc

    return argparse.Namespace(func=fail, verbose=False, traceback=traceback)


@pytest.mark.parametrize("exc", [UserError("data.shards: shard x.tar does not exist"), ConfigError("bad key"),
                                 MediaError("clip.mp4: not a decodable mp4"), FileNotFoundError("no such folder: y")])
def test_user_errors_print_one_line_and_exit_2(exc, capsys):
    assert run_command(_args(exc), prog="actavatar train") == 2
    err = capsys.readouterr().err
    assert err == f"actavatar train: error: {exc}\n"
    assert isinstance(exc, (ValueError, OSError))  # UserError is a ValueError: old `except ValueError` still catch it


def test_a_plain_value_error_is_a_bug_and_keeps_its_traceback(monkeypatch):
    monkeypatch.delenv("ACTAVATAR_TRACEBACK", raising=False)
    with pytest.raises(ValueError, match="internal shape mismatch"):
        run_command(_args(ValueError("internal shape mismatch")), prog="actavatar train")
    with pytest.raises(UserError):  # --traceback shows user errors in full too
        run_command(_args(UserError("x"), traceback=True), prog="actavatar train")
