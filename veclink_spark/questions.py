"""Questions to the user, and the answers that come back (driver side, numpy / pandas).

A run that is not sure of its links (a stall, or an estimated precision under
:data:`ASK_BELOW_PRECISION`) writes the ``questions`` table: the pairs whose yes / no answer should
help the next run most. A confirmed pair becomes a seed, and seeds are what a run learns its map from:
the evidence that lifts a stalled pair is a few more right pairs spread over the data (docs/method.md,
"Questions"). So a question is a link that is likely right (its ``1 - lfdr``,
:mod:`veclink_spark.precision`) and far from every seed and every earlier question (greedy, each pick
maximising chance x distance, as farthest-point sampling does with a weight). A rejected pair is never
linked again and tells the user where the run errs. Beside a no the user may name the left row's
partner (a confirmed pair that was not asked, ``n=ID`` in ``notebooks/answer_questions.py``): after a
deep stall, where hardly any question is right, such known pairs are what lifts the next run.

Answers come back as a table of ``left_id``, ``right_id``, ``match`` (yes / no); :func:`apply_answers`
turns them into seeds the seed check never drops and pairs the run never links.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError

log = logging.getLogger(__name__)

#: A run that took off still asks when its estimated precision is under this.
ASK_BELOW_PRECISION = 0.9

#: Under this chance a question's reason adds :data:`UNSURE_HINT`.
UNSURE_CHANCE = 0.1

#: After a stall a yes is as rare as a right link; a partner the user finds is a known pair.
UNSURE_HINT = "; if no, name the left row's partner when you find it among the right rows (a known pair)"

#: Values of the answers' ``match`` column read as yes and as no (case-insensitive for strings).
YES = {"true", "yes", "y", "1", "match"}
NO = {"false", "no", "n", "0", "no match"}


def choose_questions(
    link_vectors: np.ndarray, known_vectors: np.ndarray, chance: np.ndarray, score: np.ndarray, k: int
) -> tuple[np.ndarray, list[str]]:
    """Pick ``k`` links to ask about.

    Args:
        link_vectors: the left vectors of the candidate links (unit), (n, d).
        known_vectors: the left vectors of the seeds (unit), (m, d).
        chance: each candidate's estimated chance of being right (NaN: unknown, counted as 0).
        score: each candidate's score (CSLS): where every chance is near 0 (a stall), the better
            scored links are asked first.
        k: how many to pick (fewer when there are fewer candidates).

    Returns:
        (positions of the picked links in the order picked, one reason per pick).
    """
    n = len(link_vectors)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, np.int64), []
    p = np.nan_to_num(np.asarray(chance, np.float64), nan=0.0)
    x = np.asarray(link_vectors, np.float64)
    if len(known_vectors):
        near = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * (x @ np.asarray(known_vectors, np.float64).T).max(axis=1)))
    else:
        near = np.full(n, 2.0)
    scale = float(np.median(near)) or 1.0
    picked: list[int] = []
    reasons: list[str] = []
    # the score's rank (0, 1] weighs a little: it decides where every chance is about 0
    rank = (np.argsort(np.argsort(np.nan_to_num(score, nan=-np.inf), kind="stable"), kind="stable") + 1) / n
    for _ in range(k):
        value = (p + 0.05 * rank) * near
        value[picked] = -np.inf
        i = int(np.argmax(value))
        picked.append(i)
        reasons.append(
            f"estimated right with chance {p[i]:.2f}; its left row is {near[i]:.2f} from the nearest seed "
            f"or earlier question (median over the links {scale:.2f}): a yes adds a seed where there is none"
            + (UNSURE_HINT if p[i] < UNSURE_CHANCE else "")
        )
        d = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * (x @ x[i])))
        near = np.minimum(near, d)
    return np.asarray(picked, np.int64), reasons


@dataclass(frozen=True)
class Answers:
    """A user's answers: ``confirmed`` and ``rejected`` pairs as (left_id, right_id) arrays of shape
    (n, 2) (object dtype keeps string and integer ids as they are)."""

    confirmed: np.ndarray
    rejected: np.ndarray

    @classmethod
    def empty(cls) -> Answers:
        return cls(np.zeros((0, 2), object), np.zeros((0, 2), object))

    def fingerprint(self) -> dict[str, int]:
        """What a resumed run compares: the counts and a hash of the pairs."""
        h = pd.util.hash_pandas_object(
            pd.DataFrame(
                {
                    "l": [str(v) for v in np.concatenate([self.confirmed[:, 0], self.rejected[:, 0]])],
                    "r": [str(v) for v in np.concatenate([self.confirmed[:, 1], self.rejected[:, 1]])],
                    "m": [True] * len(self.confirmed) + [False] * len(self.rejected),
                }
            ),
            index=False,
        )
        return {
            "confirmed": len(self.confirmed),
            "rejected": len(self.rejected),
            "hash": int(h.sum() % (2**61)),
        }


def read_answers(pdf: pd.DataFrame, where: str) -> Answers:
    """Validate an answers table (``left_id``, ``right_id``, ``match``) read into pandas.

    Raises:
        InputError: a column is missing, a ``match`` value is neither yes nor no, or a pair is answered
            twice with different answers; every problem at once.
    """
    missing = [c for c in ("left_id", "right_id", "match") if c not in pdf.columns]
    if missing:
        have = ", ".join(map(str, pdf.columns))
        raise InputError(f"answers {where}: missing column(s) {', '.join(missing)} (columns: {have})")
    problems: list[str] = []
    match: list[bool | None] = []
    for i, v in enumerate(pdf["match"].tolist()):
        s = str(v).strip().lower() if not isinstance(v, (bool, np.bool_)) else str(bool(v)).lower()
        if s in YES:
            match.append(True)
        elif s in NO:
            match.append(False)
        else:
            match.append(None)
            if len(problems) < 5:
                problems.append(f"row {i}: match {v!r} is neither yes nor no")
    if pdf[["left_id", "right_id"]].isna().any().any():
        problems.append("some answers have no left_id or right_id")
    if problems:
        raise InputError(f"answers {where}: " + "; ".join(problems))
    df = pd.DataFrame({"left_id": pdf["left_id"], "right_id": pdf["right_id"], "match": match})
    twice = df.drop_duplicates().duplicated(["left_id", "right_id"], keep=False)
    if twice.any():
        first = df.drop_duplicates()[twice].iloc[0]
        raise InputError(
            f"answers {where}: the pair ({first['left_id']}, {first['right_id']}) is answered both yes and no"
        )
    df = df.drop_duplicates()
    yes, no = df[df["match"]], df[~df["match"]]
    pairs = [np.array(list(zip(t["left_id"], t["right_id"], strict=True)), dtype=object) for t in (yes, no)]
    return Answers(*(p.reshape(-1, 2) for p in pairs))


def apply_answers(
    seed_left: np.ndarray, seed_right: np.ndarray, answers: Answers
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seeds with the confirmed pairs added: (seed_left, seed_right, confirmed mask).

    Raises:
        InputError: a confirmed pair shares a row with a seed of another partner, or with another
            confirmed pair (one-to-one), or a rejected pair is a seed.
    """
    seed_left, seed_right = np.asarray(seed_left), np.asarray(seed_right)
    seeds = set(zip(seed_left.tolist(), seed_right.tolist(), strict=True))
    rejected_seeds = [tuple(p) for p in answers.rejected.tolist() if tuple(p) in seeds]
    if rejected_seeds:
        raise InputError(
            f"answers reject {len(rejected_seeds)} seed pair(s), e.g. {rejected_seeds[0]}: remove them from "
            "the seeds or change the answer"
        )
    new = [tuple(p) for p in answers.confirmed.tolist() if tuple(p) not in seeds]
    left = seed_left.tolist() + [p[0] for p in new]
    right = seed_right.tolist() + [p[1] for p in new]
    for name, ids in (("left", left), ("right", right)):
        seen = pd.Series(ids)
        if seen.duplicated().any():
            dup = seen[seen.duplicated()].iloc[0]
            raise InputError(
                f"the seeds and confirmed answers give the {name} id {dup!r} two partners: a row is linked "
                "once; correct the answers or the seeds"
            )
    confirmed = set(map(tuple, answers.confirmed.tolist()))
    mask = np.array([(a, b) in confirmed for a, b in zip(left, right, strict=True)], dtype=bool)
    log.info("answers: %d confirmed pairs added as seeds, %d rejected pairs", len(new), len(answers.rejected))
    return np.asarray(left, dtype=seed_left.dtype), np.asarray(right, dtype=seed_right.dtype), mask


def drop_rejected(links: dict[str, np.ndarray], answers: Answers) -> tuple[dict[str, np.ndarray], int]:
    """The links without the pairs the user rejected: (links, how many were dropped)."""
    if not len(answers.rejected):
        return links, 0
    rejected = set(map(tuple, answers.rejected.tolist()))
    keep = np.array(
        [
            (a, b) not in rejected
            for a, b in zip(links["left_id"].tolist(), links["right_id"].tolist(), strict=True)
        ],
        dtype=bool,
    )
    return {k: np.asarray(v)[keep] for k, v in links.items()}, int((~keep).sum())
