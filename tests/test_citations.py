"""Citations that hold: sentences are scored against the sources they cite."""

from graph.citations import SUPPORT_THRESHOLD, check_citations

SOURCES = [
    {"n": 1, "text": "The password reset link is valid for 30 minutes and can be used once."},
    {"n": 2, "text": "Invoices are emailed on the first day of each month."},
]


def test_a_sentence_that_says_what_its_source_says_is_supported() -> None:
    report = check_citations("The reset link is valid for 30 minutes [1].", SOURCES)
    assert report.sentences[0].cited == [1]
    assert report.sentences[0].support is not None and report.sentences[0].support >= SUPPORT_THRESHOLD
    assert report.unsupported == []


def test_a_sentence_its_source_does_not_back_is_flagged() -> None:
    report = check_citations("Our offices in Paris open at nine on weekends [2].", SOURCES)
    assert report.unsupported == ["Our offices in Paris open at nine on weekends [2]."]


def test_sentences_without_citations_are_not_scored() -> None:
    report = check_citations("Hello! The link lasts 30 minutes [1].", SOURCES)
    assert report.sentences[0].support is None
    assert report.sentences[1].cited == [1]
