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


# "Are you a real person?" asks about the bot; only with a wish ("…? I want to talk to one") is it a request.
_ABOUT_BOT = re.compile(
    r"\b(are you|r u|is this|am i (talking|chatting|speaking) (to|with))\b.{0,25}"
    r"\b(person|human|bot|robot|chatbot|ai|machine|computer|real)\b",
    re.IGNORECASE,
)
_WISH = re.compile(
    r"\b(talk|speak|connect|transfer|put me|get me|want|need|give me|let me|can i|could i)\b", re.IGNORECASE
)


def asks_for_person(message: str) -> bool:
    if _ABOUT_BOT.search(message) and not _WISH.search(message):
        return False
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


# What short chat messages are made of, in the languages customers write most (space-separated words; the
# scripts without spaces are matched inside the message). Used only once the documentation had nothing.
_CHAT_WORDS = {
    "thanks": "thanks thank thanx thx ty tysm cheers appreciated appreciate merci gracias grazie danke dank dankeschön "
    "obrigado obrigada bedankt dankjewel dankuwel dziękuję dzięki teşekkürler teşekkür sağol tack takk tak kiitos "
    "спасибо благодарю дякую děkuji köszönöm multumesc mulțumesc efharisto ευχαριστώ shukran شكرا dhanyavaad "
    "dhanyavad shukriya धन्यवाद शुक्रिया terima kasih salamat cảm ơn",
    "bye": "bye goodbye byebye cya later adios adiós revoir tschüss tschüs arrivederci tchau até hasta luego pronto "
    "пока свидания doei dag ciao hej då hejdå näkemiin goodnight night",
    "greeting": "hi hii hiii hello helo hallo hey heya heyy heyyy hiya howdy yo sup greetings morning afternoon "
    "evening hola holaa holaaa bonjour bonsoir salut coucou ciao buongiorno buonasera olá ola oi hej hei moin servus "
    "grüß gruss namaste namaskar ahoj cześć czesc witam merhaba selam привет здравствуйте hallo dag goedemorgen "
    "goedemiddag buenos buenas dias días tardes noches bom boa dia tarde noite guten tag abend shalom aloha "
    "marhaba salaam salam sawubona jambo xin chào",
    "ack": "ok okay okey k kk cool gotit great perfect perfecto perfeito perfekt parfait awesome nice alright noted "
    "understood super lol haha hahaha lmao gotcha vale genial d'accord daccord prima ottimo "
    "entendi entendido compris verstanden klar",
}
_CHAT_SCRIPTS = {
    "thanks": ("谢谢", "多谢", "ありがとう", "감사합니다", "고마워", "고맙습니다", "شكرا", "धन्यवाद", "ขอบคุณ", "תודה"),
    "bye": ("再见", "拜拜", "さようなら", "またね", "안녕히", "وداعا", "अलविदा", "ลาก่อน", "להתראות"),
    "greeting": ("你好", "您好", "こんにちは", "こんばんは", "おはよう", "안녕", "مرحبا", "السلام", "नमस्ते", "สวัสดี"),
    "ack": ("了解", "好的", "알겠", "👍", "👌", "🙏"),
}
_CHAT_LOOKUP = {word: kind for kind, words in _CHAT_WORDS.items() for word in words.split()}
_ABOUT_YOU = re.compile(
    r"\b(bot|robot|chatbot|ai|human|machine|real person|your name|who are you|t'es|eres|bist du)\b", re.IGNORECASE
)
CHAT_MAX_WORDS = 10
# A question left after the chit-chat is taken out ("ok so how do I get a refund?") is not chat.
_CHIT_CHAT = re.compile(
    r"\bhow('?s| are| is| have)\b.{0,15}\b(you|u|it going|your day|things)\b|\bwhat'?s up\b", re.IGNORECASE
)
_QUESTION = re.compile(
    r"\b(how|what|why|when|where|which|who|can|could|does|do|did|should|will|is there|are there)\b", re.IGNORECASE
)


def chat_kind(message: str) -> str | None:
    """What a short message that the documentation had nothing for is, when it is chat rather than a question the
    docs lack: "greeting", "thanks", "bye", "bot" (about the assistant itself) or "ack" ("ok cool", "👍") — in
    any of the languages above. The message must open with a chat word and ask nothing after the chit-chat ("it keeps
    crashing", "ok so how do I get a refund?" are questions the docs lack: they are left to the offer of a person).
    The agent replies in kind instead of "I couldn't find this in our documentation"."""
    text = message.strip()
    words = [w.rstrip("!.,?") for w in re.findall(r"[^\W\d_][\w'’]*", text.lower().replace("got it", "gotit"))]
    if len(words) > CHAT_MAX_WORDS:
        return None
    if not words:
        return "ack" if text and not any(c.isdigit() for c in text) else None  # only emoji or punctuation
    if _ABOUT_BOT.search(text) or (_ABOUT_YOU.search(text) and len(words) <= 6):
        return "bot"
    opens = words[0] in _CHAT_LOOKUP or any(text.startswith(mark) for marks in _CHAT_SCRIPTS.values() for mark in marks)
    if not opens or _QUESTION.search(_CHIT_CHAT.sub(" ", text)):  # chat opens it, and no question follows
        return None
    found = {_CHAT_LOOKUP[w] for w in words if w in _CHAT_LOOKUP}
    found |= {kind for kind, marks in _CHAT_SCRIPTS.items() if any(mark in text for mark in marks)}
    for kind in ("thanks", "bye", "greeting", "ack"):  # "thanks, bye!" is thanks
        if kind in found:
            return kind
    return None
