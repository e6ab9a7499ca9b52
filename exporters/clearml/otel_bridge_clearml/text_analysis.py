"""Text metrics of a generation: textstat readability scores and spaCy renderings, as the seed
handler's `analyze_text` computed them, without touching ClearML.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_logger = logging.getLogger(__name__)

__all__ = [
    "COMPLEXITY_METRICS",
    "DEFAULT_SPACY_MODEL",
    "Rendering",
    "TextAnalysis",
    "TextAnalyzer",
]

# The seed's metric names, in its order (they become table columns and scalar titles).
COMPLEXITY_METRICS: tuple[str, ...] = (
    "flesch_reading_ease",
    "flesch_kincaid_grade",
    "smog_index",
    "coleman_liau_index",
    "automated_readability_index",
    "dale_chall_readability_score",
    "difficult_words",
    "linsear_write_formula",
    "gunning_fog",
    "text_standard",
    "fernandez_huerta",
    "szigriszt_pazos",
    "gutierrez_polini",
    "crawford",
    "gulpease_index",
    "osman",
)
DEFAULT_SPACY_MODEL = "en_core_web_sm"  # the seed's; not installable from PyPI, so configurable

DEPENDENCIES_TITLE = "Dependencies Plot"
ENTITIES_TITLE = "Entities Plot"


@dataclass(frozen=True, slots=True)
class Rendering:
    """One spaCy displaCy page: `title` is the seed's media title ("Dependencies Plot", ...)."""

    title: str
    html: str


@dataclass(frozen=True, slots=True)
class TextAnalysis:
    metrics: Mapping[str, float | str] = field(default_factory=dict)
    renderings: tuple[Rendering, ...] = ()

    @property
    def numeric_metrics(self) -> dict[str, float]:
        """The metrics that can be plotted (`text_standard` is a grade label, not a number)."""
        return {
            name: float(value)
            for name, value in self.metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }


class TextAnalyzer:
    """Computes what `complexity_metrics` / `visualize` ask for; both off means no work at all.

    `spacy_model` is anything `spacy.load` accepts (an installed package name or a pipeline
    directory). It is loaded here, so a missing model or package fails at construction with a
    message naming it, not later on the delivery thread. textstat without its NLTK data (its
    download failed) only leaves the complexity metrics out, with one warning.
    """

    def __init__(
        self,
        *,
        complexity_metrics: bool = False,
        visualize: bool = False,
        spacy_model: str = DEFAULT_SPACY_MODEL,
    ) -> None:
        self.complexity_metrics = complexity_metrics
        self.visualize = visualize
        self.spacy_model = spacy_model
        self._textstat: Any = None
        if complexity_metrics:
            self._textstat = _require("textstat", "complexity")
            try:
                self._textstat.flesch_reading_ease("The readability data is here.")
            except LookupError:
                # As the seed does in effect (its callbacks fail and LangChain logs it), the app
                # starts and runs: the complexity columns are absent, said once here.
                _logger.warning(
                    "complexity_metrics=True: textstat cannot load NLTK's cmudict corpus (its "
                    "download failed), so the complexity metrics are left out; run `python -m "
                    "nltk.downloader cmudict` or point NLTK_DATA at a directory holding "
                    "corpora/cmudict to get them"
                )
                self._textstat = None
        self._spacy: Any = None
        self._nlp: Callable[[str], Any] | None = None
        if visualize:
            self._spacy = _require("spacy", "visualize")
            try:
                self._nlp = self._spacy.load(spacy_model)
            except OSError as error:
                raise ValueError(
                    f"visualize=True needs the spaCy pipeline {spacy_model!r}, which cannot be "
                    f"loaded ({error}); install it or pass spacy_model= (or set "
                    "OTEL_BRIDGE_CLEARML_SPACY_MODEL) to a pipeline name or directory"
                ) from error

    @property
    def enabled(self) -> bool:
        return self._textstat is not None or self._nlp is not None

    @property
    def nlp(self) -> Callable[[str], Any] | None:
        """The spaCy pipeline `visualize` renders with (None when off)."""
        return self._nlp

    def analyze(self, text: str) -> TextAnalysis:
        metrics: dict[str, float | str] = {}
        if self._textstat is not None:
            for name in COMPLEXITY_METRICS:
                metrics[name] = getattr(self._textstat, name)(text)
        renderings: tuple[Rendering, ...] = ()
        if self._nlp is not None:
            doc = self._nlp(text)
            displacy = self._spacy.displacy
            renderings = (
                Rendering(
                    DEPENDENCIES_TITLE, displacy.render(doc, style="dep", jupyter=False, page=True)
                ),
                Rendering(
                    ENTITIES_TITLE, displacy.render(doc, style="ent", jupyter=False, page=True)
                ),
            )
        return TextAnalysis(metrics=metrics, renderings=renderings)


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ValueError(
            f"{module} is not installed; install otel-bridge-clearml[{extra}] to use this option"
        ) from error
