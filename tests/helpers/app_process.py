"""The real app for the tests: launcher/app_process.py (shared with the benchmarks)."""

from launcher.app_process import HELP_CENTER, AppProcess, run_app, seed_knowledge_base

__all__ = ["HELP_CENTER", "AppProcess", "run_app", "seed_knowledge_base"]
