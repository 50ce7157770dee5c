"""`actavatar data run`, `data status` and `data serve-vlm`: the corpus pipeline.

    actavatar data run --input RAW/ --output OUT/ [--config configs/annotate/default.yaml] [key=value ...]
    actavatar data status OUT/
    actavatar data serve-vlm --model Qwen/Qwen2.5-VL-7B-Instruct --port 8000
    python -m annotate.cli run --input RAW/ --output OUT/
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from dataset.command import standalone_main
from dataset.errors import UserError


def _run(args: argparse.Namespace) -> int:
    from annotate.config import AnnotateConfig
    from annotate.pipeline import format_summary, run_pipeline
    from dataset.config_loader import load_config

    cfg = load_config(AnnotateConfig, args.config, args.overrides)
    if args.progress_every < 0:
        raise UserError(f"--progress-every must be >= 0 seconds, got {args.progress_every}")
    summary = run_pipeline(cfg, args.input, args.output, ray_address=args.ray_address, worker_logs=args.verbose,
                           progress_every=args.progress_every)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _status(args: argparse.Namespace) -> int:
    from annotate.ledger import CLIP_STAGES
    from annotate.pipeline import run_status

    status = run_status(args.output)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"run {status['output']}: {status['inputs'] if status['inputs'] is not None else '?'} input(s)")
    for stage, count in status["stages"].items():
        print(f"  {stage:<8} {count} {'clip' if stage in CLIP_STAGES else 'source'}(s) done")
    print(f"  clips    {status['clips_cut']} cut")
    print(f"  groups   {status['groups_packed']} shard group(s) packed")
    packed = status["packed"]
    print("  packed   " + (", ".join(f"{n} {s}" for s, n in sorted(packed.items())) if packed else "not yet"))
    return 0


def _serve_vlm(args: argparse.Namespace) -> int:
    from annotate.vlm_serve import serve

    if args.batch_size < 1 or args.max_tokens < 1:
        raise UserError(f"--batch-size and --max-tokens must be >= 1, got {args.batch_size} and {args.max_tokens}")
    serve(args.model, host=args.host, port=args.port, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
          max_tokens=args.max_tokens, served_name=args.served_name)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `run` and `status` to the `data` group."""
    p = commands.add_parser(
        "run",
        help="build a corpus: probe, shots, cut/normalise, face filter, ASR + alignment, captions, pack (Ray Data)",
        description="Cut raw talking videos into normalised clips (25 fps, 16 kHz mono, configured size), "
        "keep the clips with one dominant face and enough speech, transcribe them with word timings "
        "(whisperx; models from local folders or caches, never downloaded: see asr.* keys), and write "
        "caption them with a VLM (caption.backend=local: a transformers Qwen2.5-VL-class model; =server: an "
        "OpenAI-compatible endpoint; base caption + timestamped phases, schema-valid by construction), and "
        "write WebDataset shards + manifest.parquet (+ captions_audit.jsonl) to OUTPUT. Resumable: rerun the "
        "same command after an interruption. Without caption.backend the caption stays null (explicitly absent).",
    )
    p.add_argument("--input", required=True, help="folder of videos, glob, text file listing paths/URLs, or an fsspec URL "
                   "(s3://bucket/raw/, gs://…)")
    p.add_argument("--output", required=True, help="output folder or fsspec URL, e.g. s3://bucket/corpus "
                   "(shards/, manifest.parquet, _work/ progress; nothing needs a shared filesystem)")
    p.add_argument("--config", default=None, help="YAML with values (e.g. configs/annotate/default.yaml)")
    p.add_argument("--ray-address", default=None, help="join an existing Ray cluster (default: local in-process Ray)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                   help="log one line per stage (sources/clips done, rate, ETA) to stderr this often; 0: off (default 30)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. clip.width=384")
    p.set_defaults(func=_run)

    p = commands.add_parser(
        "serve-vlm",
        help="serve a local VLM on an OpenAI-compatible /v1/chat/completions endpoint (guided JSON)",
        description="Load a transformers image-text-to-text model (Qwen2.5-VL class; Hugging Face id or local "
        "folder) and serve OpenAI-style chat completions with response_format json_schema / guided_json "
        "honoured by xgrammar-constrained decoding; concurrent requests are micro-batched. For CPU boxes, "
        "tests and small GPU setups; vLLM or SGLang serve the same API at scale. Images must be inline data: "
        "URLs. Point a run at it with caption.backend=server caption.vlm.server_url=http://HOST:PORT/v1 caption.vlm.model=NAME.",
    )
    p.add_argument("--model", required=True, help="Hugging Face id or local model folder")
    p.add_argument("--served-name", default="", help="model name clients must send (default: --model)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; default 8000)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument("--batch-size", type=int, default=8, help="requests generated together (default 8)")
    p.add_argument("--max-tokens", type=int, default=2048, help="default max_tokens when a request gives none")
    p.set_defaults(func=_serve_vlm)

    p = commands.add_parser("status", help="per-stage progress of a run", description="Per-stage counts of a run, finished or not.")
    p.add_argument("output", help="the run's output folder or URL")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m annotate.cli", __doc__.splitlines()[0], argv, register=register)


if __name__ == "__main__":
    raise SystemExit(main())
