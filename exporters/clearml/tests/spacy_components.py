"""A rule-based spaCy component for the visualize tests (importing this registers it): it tags
capitalized words PROPN, punctuation PUNCT, the rest NOUN, and hangs each token on the previous
one, so displaCy has tags and arcs to draw without a trained English model."""

from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc

TOY_PARSER = "otel_bridge_toy_parser"


@Language.component(TOY_PARSER)
def toy_parser(doc: Doc) -> Doc:
    for index, token in enumerate(doc):
        if token.is_punct:
            token.pos_ = "PUNCT"
        elif token.text[:1].isupper():
            token.pos_ = "PROPN"
        else:
            token.pos_ = "NOUN"
        if index == 0:
            token.head = token
            token.dep_ = "ROOT"
        else:
            token.head = doc[index - 1]
            token.dep_ = "punct" if token.is_punct else "dep"
    return doc
