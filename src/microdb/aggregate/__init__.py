"""Aggregation pipelines (``table.aggregate([...])``): MongoDB's stages, run in Python or SQL.

:mod:`microdb.aggregate.pipeline` checks a pipeline and parses its stages and
expressions; :mod:`microdb.aggregate.run` runs stages in Python. The table hands the
leading ``$match``/``$sort``/``$skip``/``$limit`` to its backend as one plan (so indexes
serve them); a SQL backend may run more of the pipeline (``$group``) in SQL
(:mod:`microdb.sql.aggregate`), and Python runs the rest.
"""

from __future__ import annotations

from microdb.aggregate.pipeline import Stage, parse_pipeline
from microdb.aggregate.run import Lookup, group, run_stages

__all__ = ["Lookup", "Stage", "group", "parse_pipeline", "run_stages"]
