"""Stance toward actors and framing in news paragraphs: label, train, evaluate."""
from .codebook import Codebook
from .errors import StanceError

__version__ = "0.1.0"

__all__ = ["Codebook", "StanceError", "Labeler", "__version__"]


def __getattr__(name):
    # The labeller pulls in the model stack; import it only when asked for, so that
    # `import stance` stays fast for validation and scoring.
    if name == "Labeler":
        from .labeler import Labeler

        return Labeler
    raise AttributeError(name)
