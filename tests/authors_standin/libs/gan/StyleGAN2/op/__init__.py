"""Stand-in (tests/authors_standin): the authors' op package builds a CUDA extension at import, as this does."""

from .upfirdn2d import upfirdn2d

__all__ = ["upfirdn2d"]
