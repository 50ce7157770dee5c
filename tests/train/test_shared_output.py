"""Multi-rank runs check at start that every rank sees the same output_dir (checkpoints need it)."""

from __future__ import annotations

import socket
from pathlib import Path

import torch.multiprocessing as mp


def _rank(rank: int, port: int, root: str) -> None:
    import torch.distributed as dist

    from dataset.errors import UserError
    from train.checkpoint import check_shared_output

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    outcomes = []
    # one folder for both ranks, then rank r "on node r": a folder of the same name that is not rank 0's
    for out in (Path(root, "shared"), Path(root, f"node{rank}")):
        try:
            check_shared_output(out, rank, 2)
            outcomes.append("ok")
        except UserError as err:
            outcomes.append(str(err))
    dist.destroy_process_group()
    Path(root, f"rank{rank}.txt").write_text("\n".join(outcomes))


def test_ranks_must_share_the_output_dir(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        shared, split = (tmp_path / f"rank{rank}.txt").read_text().split("\n")
        assert shared == "ok"
        # every rank stops, with the same explanation
        assert f"output_dir {tmp_path / f'node{rank}'} is not shared between the ranks: rank 1 on" in split
        assert "a filesystem every node mounts" in split
    assert not list((tmp_path / "shared").iterdir())  # the probe is removed
