"""Counters of the agent, exported by the server's /metrics."""

from prometheus_client import Counter

LLM_ERRORS = Counter("llm_errors_total", "LLM calls that failed (the customer got the fallback answer)", ["code"])
ESCALATION_REASONS = Counter("agent_escalations_total", "Escalations decided by the agent", ["reason"])
GUARD_CORRECTIONS = Counter("agent_false_promises_corrected_total", "Answers claiming a ticket that did not exist")
UNSUPPORTED_SENTENCES = Counter(
    "answer_unsupported_sentences_total", "Answer sentences whose cited source does not back them (graph/citations.py)"
)
CITATIONS_REMOVED = Counter("answer_citations_removed_total", "[n] markers that pointed at no given source")
