"""`actavatar data ...` commands that read corpora: validate and stats.

    actavatar data validate OUT/            # exit 0: valid; 1: one line per problem
    actavatar data stats OUT/ [--json]
    actavatar data review OUT/ [--html FILE | --port P]
    python -m dataset.cli validate OUT/     # the same without the console script
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dataset.command import standalone_main


def _validate(args: argparse.Namespace) -> int:
    from dataset.annotation import AnnotationRules
    from dataset.validate import validate_corpus

    report = validate_corpus(
        args.path,
        decode=not args.no_decode,
        rules=AnnotationRules(min_phase_s=args.min_phase_s),
        workers=args.workers,
    )
    for line in report.problems:
        print(line)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    status = ", ".join(f"{n} {s}" for s, n in sorted(report.status_counts.items())) or "no rows"
    verdict = "VALID" if report.ok else f"INVALID: {len(report.problems)} problem(s)"
    print(
        f"{verdict} - {report.root}: {report.shards} shard(s), {report.samples} sample(s), "
        f"{report.hours * 3600:.1f} s of video; manifest {report.manifest_rows} row(s) ({status})"
    )
    return 0 if report.ok else 1


def _stats(args: argparse.Namespace) -> int:
    from dataset.stats import corpus_stats, format_stats, stats_json

    stats = corpus_stats(args.path)
    print(stats_json(stats) if args.json else format_stats(stats))
    return 0


def _review(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dataset.review import build_review

    # a corpus on object storage gets its page in ./review/ (the page and strips are local files)
    default = Path("review") if "://" in args.path else Path(args.path) / "review"
    html = Path(args.html) if args.html else default / "index.html"
    summary = build_review(args.path, html, frames=args.frames, height=args.height, progress=not args.no_progress)
    status = ", ".join(f"{n} {s}" for s, n in sorted(summary["status"].items())) or "no rows"
    print(f"review page: {html} ({summary['rows']} rows: {status})")
    if args.port is None:
        print(f"open it in a browser: file://{html.resolve()}")
        return 0
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html.parent))
    with http.server.ThreadingHTTPServer((args.host, args.port), handler) as server:
        print(f"serving on http://{args.host}:{server.server_address[1]}/{html.name} (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this package's commands to the `data` group."""
    p = commands.add_parser(
        "validate",
        help="check every shard and the manifest of a corpus",
        description="Check a corpus folder (shards/ + manifest.parquet): members present, media "
        "decodable, annotation JSON valid against schema v1 (phase rules included), manifest and "
        "shards agree. Prints one line per problem (file: key: what) and exits 1 if there is any, "
        "0 on a valid corpus.",
    )
    p.add_argument("path", help="corpus folder (holds shards/ and manifest.parquet)")
    p.add_argument("--no-decode", action="store_true", help="probe mp4 containers instead of decoding every frame (faster)")
    p.add_argument("--workers", type=int, default=1, help="shards checked in parallel processes (default 1)")
    p.add_argument("--min-phase-s", type=float, default=0.5, help="shortest allowed phase in seconds (default 0.5)")
    p.set_defaults(func=_validate)

    p = commands.add_parser(
        "stats",
        help="clips, hours, phases and words per clip, rejection reasons",
        description="Summarise a corpus from its manifest: clips kept, hours, phases per clip, "
        "words per clip and why candidates were rejected.",
    )
    p.add_argument("path", help="corpus folder (holds manifest.parquet)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_stats)

    p = commands.add_parser(
        "review",
        help="write (and optionally serve) a static HTML page to review a corpus clip by clip",
        description="A page a person opens in a browser: per kept clip a frame strip with the face box, "
        "the phase timeline, base caption, transcript with word times and the AV-sync figures; rejected "
        "and failed rows with their reasons; filters by status, reason and text; paged. Static files, "
        "no network: open FILE from disk, or serve it with --port.",
    )
    p.add_argument("path", help="corpus folder (holds shards/ and manifest.parquet)")
    p.add_argument("--html", help="page to write (default PATH/review/index.html, ./review/index.html for a URL such as "
                   "s3://bucket/corpus; strips go to <stem>_files/ beside it)")
    p.add_argument("--port", type=int, help="serve the page over HTTP on this port after writing it (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip strip (default 8)")
    p.add_argument("--height", type=int, default=72, help="strip height in pixels (default 72)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_review)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m dataset.cli", __doc__.splitlines()[0], argv, register=register)


if __name__ == "__main__":
    raise SystemExit(main())
