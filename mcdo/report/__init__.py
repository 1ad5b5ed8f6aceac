"""The claims report: ``summary`` (the data model: marks, cells, coverage, header), ``markdown`` (claims.md),
``html`` (claims.html, one self-contained page) and ``writer`` (all four files written together; reading and
merging a report). The names a caller needs are here."""
from __future__ import annotations

from .html import page
from .markdown import markdown
from .summary import (MARK, SYMBOL, cell_summary, cell_text, cells, coverage, departures_text, finding_rows, fmt,
                      held_runs, header, short, skip_groups)
from .writer import merge, read, runs, write

__all__ = ["MARK", "SYMBOL", "cell_summary", "cell_text", "cells", "coverage", "departures_text", "finding_rows",
           "fmt", "held_runs", "header", "markdown", "merge", "page", "read", "runs", "short", "skip_groups", "write"]
