"""Every Prometheus metric of the product, defined once; `/metrics` (api/metrics.py) serves the default registry.

One module so that a name is never registered twice and an operator finds every series in one place.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# HTTP (api/metrics.py's middleware)
REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time to the response headers",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMITED = Counter("rate_limited_requests_total", "Requests refused with 429", ["scope"])
WEBHOOK = Counter("ticket_webhook_deliveries_total", "Ticket webhook deliveries", ["result"])
# Analytics (api/analytics.py): turns or ratings that could not be counted (each is logged; the turn goes on)
ANALYTICS_FAILURES = Counter("analytics_record_failures_total", "Analytics updates that failed", ["kind"])
# The event loop (api/loop_lag.py): how late a task sleeping 0.25 s woke up; a blocked loop delays every request
LAG_BUCKETS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000)
EVENT_LOOP_LAG = Histogram(
    "event_loop_lag_seconds",
    "How much later than asked the event loop woke a sleeping probe task",
    buckets=tuple(ms / 1000 for ms in LAG_BUCKETS_MS),  # fine from 1 ms to 1 s
)

# Chat streams (api/chat.py)
FIRST_TOKEN_SECONDS = Histogram(
    "chat_time_to_first_token_seconds",
    "From /chat request to the first answer token sent",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
SOURCES_SECONDS = Histogram(
    "chat_time_to_sources_seconds",
    "From /chat request to the sources event",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
TOKENS = Counter("chat_tokens_streamed_total", "Answer tokens (stream chunks) sent to clients")
STREAMS = Gauge("chat_streams_in_progress", "Answers being streamed now")
PREPARING = Gauge("chat_turns_preparing", "Turns preparing their answer now (api/admission.py)")
PREPARE_WAITING = Gauge("chat_turns_waiting_to_prepare", "Turns waiting for PREPARE_CONCURRENCY (api/admission.py)")
CHATS = Counter("chat_turns_total", "Chat turns by outcome", ["outcome"])  # answered | escalated | refused | …
ESCALATIONS = Counter("chat_escalations_total", "Conversations handed to a person (ticket opened or updated)")
ERRORS = Counter("chat_errors_total", "Error events sent in chat streams", ["code"])

# The agent (graph/)
LLM_ERRORS = Counter("llm_errors_total", "LLM calls that failed (the customer got the fallback answer)", ["code"])
ESCALATION_REASONS = Counter("agent_escalations_total", "Escalations decided by the agent", ["reason"])
INJECTION_BLOCKED = Counter("injection_blocked_total", "Messages or answers refused as prompt injection", ["kind"])
OUTPUT_CHECKS = Counter(
    "answer_output_checks_total",
    "Answer text changed before the customer saw it, by check "
    "(system_prompt_echo, invalid_citation, foreign_link, false_promise)",
    ["check"],
)
UNSUPPORTED_SENTENCES = Counter(
    "answer_unsupported_sentences_total", "Answer sentences whose cited source does not back them (graph/citations.py)"
)
