"""`python -m ingest PATH... [--base-url URL] [--collection NAME] [--prune]` (docs/ingestion.md).

Skipped files and quarantined chunks (injected instructions: not indexed, listed in the console) are printed one
per line on stderr, then the summary on stdout.

Exit codes: 0 done (also when every file was unchanged), 1 nothing could be ingested although there was input,
2 the knowledge base (Chroma) cannot be reached or a setting is invalid, 130 interrupted (the index stays usable;
run the same command again).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ingest.pipeline import IngestReport, StoreUnavailable, check, ingest
from settings import get_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ingest", description="Index documents into the knowledge base.")
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders (.md .markdown .html .htm .txt .pdf)")
    parser.add_argument("--base-url", help="public URL of each PATH's folder; a file's URL is this + its relative path")
    parser.add_argument("--collection", help="Chroma collection (default: KB_COLLECTION)")
    parser.add_argument("--prune", action="store_true", help="remove chunks of files under PATHs that are gone")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (also off when not a terminal)")
    parser.add_argument(
        "--check", action="store_true", help="only read and scan: list what would be skipped or quarantined"
    )
    return parser.parse_args(argv)


def exit_code(report: IngestReport) -> int:
    """Failure only when there was input and none of it is in the index (nor was anything pruned)."""
    had_input = report.files > 0 or bool(report.skipped)
    nothing_done = report.embedded + report.unchanged + report.deleted == 0
    return 1 if had_input and nothing_done else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a broken PDF is reported once, as a skipped file
    try:
        if args.check:
            return print_report(check(args.paths, get_settings(), base_url=args.base_url), code=0)
        report = ingest(
            args.paths,
            get_settings(),
            base_url=args.base_url,
            collection=args.collection,
            prune=args.prune,
            show_progress=not args.no_progress and sys.stderr.isatty(),
        )
    except (StoreUnavailable, ValueError) as error:  # unreachable store or an invalid setting
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the index is still usable; run the same command again to finish", file=sys.stderr)
        return 130
    return print_report(report, exit_code(report))


def print_report(report: IngestReport, code: int) -> int:
    """Skipped files and quarantined chunks one per line on stderr, then the summary on stdout."""
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for held in report.quarantined:
        where = f" › {held.section}" if held.section else ""
        print(f"quarantined {held.source}{where}: {held.reason} — “{held.excerpt}”", file=sys.stderr)
    print(report, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
