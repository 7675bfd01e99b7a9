"""Moved to the core: the verdict type lives in `tfcaf.verdict` (shared by every stage).

This module re-exports it so old imports keep working; new code imports `tfcaf.verdict`.
"""

from tfcaf.verdict import STAGES, STATUSES, VERDICTS, Rejection, Verdict, infrastructure, rejected

__all__ = ["STAGES", "STATUSES", "VERDICTS", "Rejection", "Verdict", "infrastructure", "rejected"]
