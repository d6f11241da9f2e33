"""The chat model: any OpenAI-compatible server (vLLM in production, llama.cpp here), through langchain-openai."""

from __future__ import annotations

import openai
from langchain_openai import ChatOpenAI

from settings import Settings


def chat_model(settings: Settings, base_url: str | None = None) -> ChatOpenAI:
    """`max_tokens` goes in the request body: llama.cpp ignores the `max_completion_tokens` langchain-openai sends.
    The timeout is the OpenAI SDK's own class: its releases moved from httpx to httpx2, and one from the other
    is refused."""
    return ChatOpenAI(
        base_url=base_url or settings.llm_base_url[0],
        api_key=settings.llm_api_key,  # type: ignore[arg-type]
        model=settings.llm_model,
        temperature=settings.llm_temperature,
        streaming=True,
        max_retries=0,
        timeout=openai.Timeout(settings.llm_read_timeout, connect=settings.llm_connect_timeout),
        extra_body={"max_tokens": settings.llm_max_tokens},
    )
