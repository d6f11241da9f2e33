"""`python -m ingest PATH... [--base-url URL] [--collection NAME] [--prune]` (docs/ingestion.md)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from ingest.pipeline import StoreUnavailable, ingest  # noqa: E402
from settings import get_settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest", description="Index documents into the knowledge base.")
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders (.md .html .txt .pdf)")
    parser.add_argument("--base-url", help="public URL of the folder; a file's URL is this + its relative path")
    parser.add_argument("--collection", help="Chroma collection (default: KB_COLLECTION)")
    parser.add_argument("--prune", action="store_true", help="remove chunks of files under PATHs that are gone")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    try:
        report = ingest(
            args.paths,
            get_settings(),
            base_url=args.base_url,
            collection=args.collection,
            prune=args.prune,
            show_progress=not args.no_progress and sys.stderr.isatty(),
        )
    except StoreUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the index is still usable; run the same command again to finish", file=sys.stderr)
        return 130
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(report)
    nothing_ingested = report.files > 0 and report.embedded + report.unchanged == 0
    no_files = report.files == 0 and not report.deleted
    return 1 if nothing_ingested or no_files else 0


if __name__ == "__main__":
    sys.exit(main())
