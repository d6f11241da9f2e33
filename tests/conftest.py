"""Real parts for the tests: a Redis server, the llama.cpp server with SmolLM2, a Chroma server.

Each is started once per test session on a free port and stopped at the end; nothing is mocked.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from launcher.services import Service, free_port, start_chroma, start_llm, start_redis
from settings import Settings

if TYPE_CHECKING:
    from helpers.app_process import AppProcess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny test model writes words of its own: the plumbing tests would see most answers withdrawn by the
# grounding check, so it is off here; tests/test_graph.py turns it on where it is the behaviour under test.
os.environ.setdefault("ANSWER_MIN_GROUNDING", "0")

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT.parent / "shared" / "eval" / "anthropic-docs"


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def redis_service(services_dir: Path) -> Iterator[Service]:
    """Debian's redis-server when installed (as in CI), else the embedded Valkey server."""
    service = start_redis(services_dir / "redis", free_port(), services_dir / "logs", prefer="redis")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def llm_service(services_dir: Path) -> Iterator[Service]:
    service = start_llm(Settings().gguf_path, free_port(), services_dir / "logs")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def chroma_service(services_dir: Path) -> Iterator[Service]:
    service = start_chroma(services_dir / "chroma", free_port(), services_dir / "logs")
    yield service
    service.stop()


def load_eval_retrieval() -> ModuleType:
    """bench/eval_retrieval.py as the module `eval_retrieval`, loaded once (its dataclasses look their module up
    in sys.modules, so it is registered before it runs)."""
    module = sys.modules.get("eval_retrieval")
    if module is None:
        spec = importlib.util.spec_from_file_location("eval_retrieval", ROOT / "bench" / "eval_retrieval.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["eval_retrieval"] = module
        spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class DevSet:
    """The development eval set, indexed: `settings` reach its collection; `questions` as in the eval file."""

    settings: Settings
    questions: list[dict[str, Any]]


@pytest.fixture(scope="session")
def dev_set(tmp_path_factory: pytest.TempPathFactory, chroma_service: Service) -> DevSet:
    """The 232 eval chunks (../shared/eval/anthropic-docs, read at run time) indexed once per session through
    the real ingestion path into the test Chroma server (~30-60 s of embedding on 2 cores); tests make their own
    KnowledgeBase on it and only read."""
    eval_retrieval = load_eval_retrieval()
    if not eval_retrieval.EVAL_DIR.is_dir():
        pytest.skip(f"the development eval set is not at {eval_retrieval.EVAL_DIR} (it lives in shared/)")
    folder = tmp_path_factory.mktemp("dev-set")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=folder / "data",
        chroma_url=chroma_service.url,
        kb_collection=f"dev-set-{folder.name}"[-60:].strip("-_."),
    )
    docs, questions = eval_retrieval.load_eval()
    eval_retrieval.index_corpus(eval_retrieval.write_corpus(docs, folder / "corpus"), settings)
    return DevSet(settings, questions)


@pytest.fixture
def settings(tmp_path: Path, chroma_service: Service, redis_service: Service, llm_service: Service) -> Settings:
    """Settings for one test: the shared real servers, a fresh data folder and collection."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        chroma_url=chroma_service.url,
        redis_url=redis_service.url,
        llm_base_url=[llm_service.url],
        kb_collection=f"test-{tmp_path.name}"[-60:].strip("-_.") or "test-collection",
        llm_temperature=0.0,
        llm_max_tokens=48,  # the tests check structure, not long answers: keep the CPU-bound LLM quick
    )


API_ADMIN_TOKEN = "test-admin-token"
NO_RATE_LIMITS = {
    "RATE_LIMIT_IP": "100000/minute",
    "RATE_LIMIT_SESSION": "100000/minute",
    "RATE_LIMIT_TICKETS_IP": "100000/minute",
    "RATE_LIMIT_TICKETS_SESSION": "100000/minute",
    "RATE_LIMIT_SESSIONS_IP": "100000/minute",
    "RATE_LIMIT_FEEDBACK_IP": "100000/minute",
}


@pytest.fixture(scope="session")
def start_app(
    tmp_path_factory: pytest.TempPathFactory, chroma_service: Service, redis_service: Service
) -> Callable[[str, str, dict[str, str]], AbstractContextManager[AppProcess]]:
    """`with start_app(name, kb_prefix, env) as app:` the real app (uvicorn subprocess, tests/helpers/app_process.py)
    on the session's Redis and Chroma, over the small seeded knowledge base (a fresh collection `<kb_prefix>-…`),
    rate limits out of the way, with `env` added (LLM_BASE_URL among them); `app.env` is its whole env."""
    from helpers.app_process import run_app, seed_knowledge_base

    @contextmanager
    def start(name: str, kb_prefix: str, env: dict[str, str]) -> Iterator[AppProcess]:
        work = tmp_path_factory.mktemp(name)
        full_env = {
            "CHROMA_URL": chroma_service.url,
            "REDIS_URL": redis_service.url,
            "KB_COLLECTION": f"{kb_prefix}-{work.name}"[-60:],
            **NO_RATE_LIMITS,
            **env,
        }
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=work / "data",
            chroma_url=chroma_service.url,
            kb_collection=full_env["KB_COLLECTION"],
        )
        seed_knowledge_base(settings)
        with run_app(work, full_env) as app:
            app.env = full_env  # type: ignore[attr-defined]
            yield app

    return start


@pytest.fixture(scope="session")
def app_server(
    start_app: Callable[[str, str, dict[str, str]], AbstractContextManager[AppProcess]], llm_service: Service
) -> Iterator[object]:
    """The real app (uvicorn subprocess) on the real services, over a small seeded knowledge base.
    Rate limits are raised here; tests of the limits start their own instance (tests/helpers/app_process.py)."""
    env = {
        "LLM_BASE_URL": llm_service.url,
        "LLM_TEMPERATURE": "0",
        "LLM_MAX_TOKENS": "200",  # long enough for the browser test to press Stop mid-answer
        "ADMIN_TOKEN": API_ADMIN_TOKEN,
    }
    with start_app("app", "api", env) as app:
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module (tests/helpers/browser.py); skips the test without Playwright."""
    from helpers.browser import launch_chromium

    with launch_chromium() as chromium:
        yield chromium
