"""Column and table names used across the package, in one place."""

from __future__ import annotations

# Internal column names of the normalised embedding tables.
ID = "id"
VECTOR = "vector"

# Link / seed / anchor tables.
LEFT_ID = "left_id"
RIGHT_ID = "right_id"
PROBABILITY = "probability"
VOTES = "votes"
VIEWS = "views"
ROUND = "round"
IS_SEED = "is_seed"
ALPHA = "alpha"
BETA = "beta"
SCORE = "score"
PRECISION_ESTIMATE = "precision_estimate"
RUN_ID = "run_id"

# Candidate generation.
VIEW = "view"
KEY = "key"
SIDE = "side"
SIM = "sim"

# Table names under the output location.
TABLE_LINKS = "links"
TABLE_ANCHORS = "anchors"
TABLE_VOTES = "votes"
TABLE_ROUND_LINKS = "round_links"
TABLE_SUMMARY = "summary"
TABLE_DUPLICATES = "duplicates"
TABLE_QUESTIONS = "questions"
SUMMARY_JSON = "summary.json"
