"""A flat-file CMS: Markdown files in git, a live REST API, signed webhooks and a fast static build."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
