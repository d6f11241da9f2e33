"""Decisions on text: does the customer ask for a person, is the model unsure, does it promise a ticket.

Heuristics on purpose: they cost nothing on CPU, where a second LLM call would double the time to first token.
"""

from __future__ import annotations

import re

_ASKS_FOR_PERSON = re.compile(
    r"\b(human|real person|live (agent|person|chat)|(support|customer service) (agent|team|rep)|representative|"
    r"operator|somebody real|someone real)\b"
    r"|\b(talk|speak|chat|connect me|put me through)\b.{0,20}\b(to|with)\b.{0,15}"
    r"\b(someone|somebody|person|agent|staff)\b",
    re.IGNORECASE,
)
_UNSURE = re.compile(
    r"\b(escalat\w*|human agent|not sure|unsure|i (do not|don't) know|(cannot|can't|unable to) (help|answer|find)|"
    r"(do not|don't) have (enough |any )?(information|details)|"
    # The model saying its sources lack the answer, in the words small models use instead of "not sure":
    r"(sources?|documentation|context)( provided)? (do|does|did) ?n[o']t (contain|mention|provide|include|cover|say|"
    r"specify|state|answer)|no information (about|on|regarding)|"
    r"(is|are) not (mentioned|covered|provided|specified|stated|listed|found|included|given|available) "
    r"in the (provided )?(sources?|documentation))\b",
    re.IGNORECASE,
)
_HANDOVER = re.compile(r"\b(ticket|case|escalat\w*|support team|human agent|colleague|specialist)\b", re.IGNORECASE)
_CLAIM_VERB = re.compile(
    r"\b(i|we)('ve| have| am| 'm|'m| will|'ll| are)?\s+(just\s+)?(created|opened|filed|raised|submitted|logged|"
    r"escalated|forwarded|assigned|contacted)\b|#\s?\d{3,}|\bticket (number|id|#)",
    re.IGNORECASE,
)
CORRECTION = "(No ticket has been opened. If you'd like a person to help, choose “Talk to a person”.)"


def asks_for_person(message: str) -> bool:
    return _ASKS_FOR_PERSON.search(message) is not None


def model_is_unsure(answer: str) -> bool:
    return _UNSURE.search(answer) is not None


def mentions_handover(text: str) -> bool:
    return _HANDOVER.search(text) is not None


def is_false_promise(sentence: str) -> bool:
    """A sentence claiming a ticket or hand-over exists. The answer step runs before any ticket of this turn
    exists, so the bot never says one exists unless the escalate step made it (and says so itself)."""
    return mentions_handover(sentence) and _CLAIM_VERB.search(sentence) is not None


_GREETING = re.compile(
    r"^(hi|hello|hey|hiya|howdy|yo|greetings|good (morning|afternoon|evening|day)|morning|hallo|bonjour|hola|ciao"
    r"|how are you|how's it going)\b",
    re.IGNORECASE,
)
_THANKS = re.compile(r"^(thanks|thank you|thx|ty|cheers|much appreciated|great,? thanks)\b", re.IGNORECASE)
_BYE = re.compile(r"^(bye|goodbye|see you|have a (nice|good) day|that'?s all|nothing else)\b", re.IGNORECASE)
_FILLER = set(
    "hi hello hey hiya howdy yo greetings good morning afternoon evening day hallo bonjour hola ciao there all "
    "everyone team bot folks friend thanks thank you thx ty cheers much appreciated great so very a lot again "
    "bye goodbye see have nice that's thats all nothing else ok okay cool how are doing today is it going "
    "what's up whats sup number".split()
)
_ACCEPT = re.compile(
    r"^(yes|yes please|yeah|yep|yup|sure|ok|okay|please|please do|do it|go ahead|y|oui|ja|sí|si)\b[\s.!,]*"
    r"(please|thanks|thank you|do it|go ahead|connect me|a person|a human)?[\s.!]*$",
    re.IGNORECASE,
)


def small_talk(message: str) -> str | None:
    """ "greeting", "thanks" or "bye" when the message is only that (emoji, names and numbers aside); else None.
    "Hi, how do I reset my password?" is a question, not small talk."""
    text = message.strip()
    words = re.findall(r"[a-z']+|\d+", text.lower())
    content = [w for w in words if w not in _FILLER and not w.isdigit()]
    if ("?" in text and content) or len(content) > 1 or len(words) > 8:
        return None
    for kind, pattern in (("greeting", _GREETING), ("thanks", _THANKS), ("bye", _BYE)):
        if pattern.search(re.sub(r"^[^\w]+", "", text)):
            return kind
    return None


def accepts_offer(message: str) -> bool:
    """A short yes to "Would you like a person to help?"."""
    return _ACCEPT.match(message.strip()) is not None
