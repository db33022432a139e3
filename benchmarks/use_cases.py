#!/usr/bin/env python
"""What users do with the links, measured: one merged index, clustering across models, new rows.

    python benchmarks/use_cases.py [--data-dir ../shared/data] [--corpus wordnet debian]
        [--out benchmarks/use_cases] [--queries 2000] [--alpha 0.3] [--seed 0]

On a benchmark split (``design/benchmark.md``: alpha 0.3, 15 in-domain seeds, fresh ids) of a corpus
embedded by all-MiniLM-L6-v2 (left) and all-MiniLM-L3-v2-paraphrase (right; the target space), with
the in-process engine (:func:`veclink_spark.arrays.fit_arrays`):

1. **Merged index** (:meth:`LinkModel.merge_arrays`) against the *oracle* index (every object of either
   table embedded by the target model) and two naive alternatives: *both indexes* (each table searched
   with the query embedded by its own model, the two top-10 lists merged by cosine) and *seed map*
   (every left row translated by a Procrustes map fitted on the 15 seeds alone, nothing merged).
   Queries are embedded by the target model's torch-free encoder (``minilm-l3-onnx``, which reproduces
   the stored vectors; ``minilm-l6-int8`` for the left model's queries, cosine 0.9996 to the stored
   ones): WordNet: the gloss's lemmas ("lemma, lemma", the part before ':'), relevant: that gloss;
   Debian: the package's short description (its first sentence), relevant: that package. recall@10 and
   NDCG@10 (one relevant object per query; an object found twice counts at its first rank).
2. **Clustering**: k-means (faiss, k = 100) on each index; adjusted Rand index of the objects' clusters
   against the oracle index's clusters, beside clustering the two tables apart.
3. **New rows**: the left table split into a fitted part and rows that arrive later (10 %, 50 %, 100 %
   more rows than the fitted part); the later rows linked with the fitted model
   (:meth:`LinkModel.link_arrays`), against a full refit on the whole left table: P/R of the new links
   against the refit's links of those rows, against the truth, and the time of each.

Ground truth (which rows are one object) lives in this script only. Writes ``OUT/results.json`` and
``OUT/REPORT.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from veclink_spark.arrays import fit_arrays  # noqa: E402
from veclink_spark.encoders import get_encoder  # noqa: E402
from veclink_spark.kernels.maps import procrustes_map  # noqa: E402
from veclink_spark.model import LinkModel  # noqa: E402
from veclink_spark.multi import confirm_arrays  # noqa: E402
from veclink_spark.splits import load_corpus, make_split  # noqa: E402

log = logging.getLogger("veclink.use_cases")

LEFT, RIGHT = "all-MiniLM-L6-v2", "all-MiniLM-L3-v2-paraphrase"
QUERY_ENCODER = {LEFT: "minilm-l6-int8", RIGHT: "minilm-l3-onnx"}
K = 10
CLUSTERS = 100


def query_text(corpus: str, text: str) -> str:
    """The query of one document: WordNet's lemmas, Debian's short description."""
    if corpus == "wordnet":
        return text.split(":", 1)[0]
    return text.split(". ", 1)[0]


def ranks(index: np.ndarray, objects: np.ndarray, queries: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Rank (1-based) of each query's relevant object in the index (first document of that object),
    K + 1 when it is not in the top K. Exact inner-product search (faiss), documents of one object
    counted once."""
    import faiss

    idx = faiss.IndexFlatIP(index.shape[1])
    idx.add(np.ascontiguousarray(index, dtype=np.float32))
    _, top = idx.search(np.ascontiguousarray(queries, dtype=np.float32), 4 * K)
    return np.asarray(
        [first_rank([int(objects[d]) for d in row if d >= 0], int(relevant[q])) for q, row in enumerate(top)]
    )


def first_rank(objects: list[int], relevant: int) -> int:
    """1-based rank of ``relevant`` among the distinct objects of a ranked list, K + 1 beyond the top K."""
    seen: list[int] = []
    for o in objects:
        if o not in seen:
            seen.append(o)
        if o == relevant:
            return len(seen)
        if len(seen) >= K:
            break
    return K + 1


def retrieval(r: np.ndarray) -> dict[str, float]:
    hit = r <= K
    return {
        "recall@10": round(float(hit.mean()), 4),
        "ndcg@10": round(float(np.where(hit, 1.0 / np.log2(r + 1.0), 0.0).mean()), 4),
    }


def both_indexes(
    left: np.ndarray,
    left_obj: np.ndarray,
    right: np.ndarray,
    right_obj: np.ndarray,
    q_left: np.ndarray,
    q_right: np.ndarray,
    relevant: np.ndarray,
) -> np.ndarray:
    """Keep both indexes: top-K of each (own model's query), merged by cosine; ranks as :func:`ranks`."""
    import faiss

    lists = []
    for x, qv in ((left, q_left), (right, q_right)):
        idx = faiss.IndexFlatIP(x.shape[1])
        idx.add(np.ascontiguousarray(x, dtype=np.float32))
        lists.append(idx.search(np.ascontiguousarray(qv, dtype=np.float32), K))
    out = np.full(len(relevant), K + 1)
    for q in range(len(relevant)):
        cands = [(s, int(left_obj[d])) for s, d in zip(lists[0][0][q], lists[0][1][q], strict=True) if d >= 0]
        cands += [
            (s, int(right_obj[d])) for s, d in zip(lists[1][0][q], lists[1][1][q], strict=True) if d >= 0
        ]
        out[q] = first_rank([o for _, o in sorted(cands, key=lambda t: -t[0])], int(relevant[q]))
    return out


def kmeans_labels(x: np.ndarray, seed: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(x.shape[1], CLUSTERS, niter=20, seed=seed, verbose=False, spherical=True)
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    return km.index.search(np.ascontiguousarray(x, dtype=np.float32), 1)[1][:, 0]


def seed_map_model(model: LinkModel, sl: np.ndarray, sr: np.ndarray) -> LinkModel:
    """The naive alternative: a Procrustes map on the seeds alone (centred like the model), no links."""
    xl, xr = model.centred(sl, "left"), model.centred(sr, "right")
    w = procrustes_map(xl.T @ xr)
    empty = pd.DataFrame({"left_id": [], "right_id": [], "probability": []})
    # The seeds-only map is orthogonal: a ridge map on 15 pairs is degenerate (measured worse).
    return LinkModel(
        model.config, model.left_mean, model.right_mean, w, w[None], model.cells, w, w.T, {}, empty
    )


def run_corpus(args: argparse.Namespace, corpus: str) -> dict[str, Any]:
    texts = pd.read_parquet(Path(args.data_dir) / corpus / "texts.parquet").set_index("id")["text"]
    e1, e2 = load_corpus(args.data_dir, corpus, LEFT), load_corpus(args.data_dir, corpus, RIGHT)
    split = make_split(e1, e2, args.alpha, 15, args.seed)
    L, R = split.left, split.right
    truth = set(zip(split.truth[:, 0].tolist(), split.truth[:, 1].tolist(), strict=True))
    seeds = split.seeds[:, 0], split.seeds[:, 1]
    t0 = time.time()
    model = fit_arrays(L.ids, L.vectors, R.ids, R.vectors, *seeds)
    fit_s = time.time() - t0
    links = model.links[~model.links["is_seed"]]
    got = set(zip(links.left_id.tolist(), links.right_id.tolist(), strict=True))
    n_true = len(truth) - len(seeds[0])
    fit = {
        "seconds": round(fit_s, 1),
        "links": len(got),
        "precision": round(len(got & truth) / max(len(got), 1), 4),
        "recall": round(len(got & truth) / max(n_true, 1), 4),
        "verdict": model.info["verdict"],
    }
    log.info("%s: fit %s", corpus, fit)

    # Objects: corpus ids. The oracle index: every object of either table, by the target model.
    l_obj, r_obj = L.source_ids, R.source_ids
    union = np.union1d(l_obj, r_obj)
    target = dict(zip(e2[0].tolist(), range(len(e2[0])), strict=True))
    oracle = e2[1][[target[o] for o in union.tolist()]]
    rng = np.random.default_rng(args.seed)
    asked = np.sort(rng.choice(union, size=min(args.queries, len(union)), replace=False))
    qtexts = [query_text(corpus, str(texts.loc[o])) for o in asked.tolist()]
    q_right = get_encoder(QUERY_ENCODER[RIGHT]).encode(qtexts)
    q_left = get_encoder(QUERY_ENCODER[LEFT]).encode(qtexts)

    def index_objects(df: pd.DataFrame) -> np.ndarray:
        pos_l = dict(zip(map(str, L.ids.tolist()), l_obj.tolist(), strict=True))
        pos_r = dict(zip(map(str, R.ids.tolist()), r_obj.tolist(), strict=True))
        return np.asarray(
            [(pos_r if s == "right" else pos_l)[i] for s, i in zip(df.source, df.source_id, strict=True)]
        )

    merged = model.merge_arrays(L.ids, L.vectors, R.ids, R.vectors)
    naive = seed_map_model(model, *_seed_vectors(split)).merge_arrays(L.ids, L.vectors, R.ids, R.vectors)
    results: dict[str, Any] = {"fit": fit, "queries": len(asked), "index_rows": {}}
    rows = {}
    for name, df in (("merged (veclink)", merged), ("seed map", naive)):
        rows[name] = retrieval(ranks(np.stack(df.vector.to_numpy()), index_objects(df), q_right, asked))
        results["index_rows"][name] = len(df)
    rows["oracle"] = retrieval(ranks(oracle, union, q_right, asked))
    results["index_rows"]["oracle"] = len(union)
    rows["both indexes"] = retrieval(both_indexes(L.vectors, l_obj, R.vectors, r_obj, q_left, q_right, asked))
    results["retrieval"] = rows
    log.info("%s: retrieval %s", corpus, rows)

    # Clustering: each object's cluster in each index, ARI against the oracle index's.
    from sklearn.metrics import adjusted_rand_score

    ref_labels = dict(zip(union.tolist(), kmeans_labels(oracle, args.seed).tolist(), strict=True))

    def object_labels(df: pd.DataFrame) -> dict[int, int]:
        objs = index_objects(df)
        lab = kmeans_labels(np.stack(df.vector.to_numpy()), args.seed)
        out: dict[int, int] = {}
        for o, c in zip(objs.tolist(), lab.tolist(), strict=True):
            out.setdefault(o, c)
        # A left object merged into a right row takes that row's cluster (right or wrong link).
        pos_l = dict(zip(map(str, L.ids.tolist()), l_obj.tolist(), strict=True))
        pos_r = dict(zip(map(str, R.ids.tolist()), r_obj.tolist(), strict=True))
        for s, i, linked in zip(df.source, df.source_id, df.linked_id, strict=True):
            if s == "right" and linked is not None:
                out.setdefault(pos_l[linked], out[pos_r[i]])
        return out

    def ari(labels: dict[int, int]) -> float:
        objs = [o for o in union.tolist() if o in labels]
        return round(float(adjusted_rand_score([ref_labels[o] for o in objs], [labels[o] for o in objs])), 4)

    apart = {
        o: int(c) for o, c in zip(r_obj.tolist(), kmeans_labels(R.vectors, args.seed).tolist(), strict=True)
    }
    for o, c in zip(l_obj.tolist(), kmeans_labels(L.vectors, args.seed).tolist(), strict=True):
        apart.setdefault(o, CLUSTERS + int(c))
    reseeded = dict(zip(union.tolist(), kmeans_labels(oracle, args.seed + 1).tolist(), strict=True))
    results["clustering_ari"] = {
        "oracle, k-means with another seed (the ceiling)": ari(reseeded),
        "merged (veclink)": ari(object_labels(merged)),
        "seed map": ari(object_labels(naive)),
        "tables apart": ari(apart),
    }
    log.info("%s: clustering %s", corpus, results["clustering_ari"])
    results["new_rows"] = new_rows(split, truth, model, args.seed)
    results["triangles"] = triangles(args, corpus)
    return results


def _seed_vectors(split: Any) -> tuple[np.ndarray, np.ndarray]:
    lpos = dict(zip(split.left.ids.tolist(), range(len(split.left.ids)), strict=True))
    rpos = dict(zip(split.right.ids.tolist(), range(len(split.right.ids)), strict=True))
    return (
        split.left.vectors[[lpos[i] for i in split.seeds[:, 0].tolist()]],
        split.right.vectors[[rpos[i] for i in split.seeds[:, 1].tolist()]],
    )


def new_rows(split: Any, truth: set, refit: LinkModel, seed: int) -> list[dict[str, Any]]:
    """Fit on part of the left table, link the rest later; compare with the full refit's links."""
    L, R = split.left, split.right
    refit_links = set(zip(refit.links.left_id.tolist(), refit.links.right_id.tolist(), strict=True))
    out = []
    seeds = set(split.seeds[:, 0].tolist())
    for more in (0.1, 0.5, 1.0):
        rng = np.random.default_rng([seed, int(more * 100)])
        n_fit = int(round(len(L.ids) / (1.0 + more)))
        order = rng.permutation(len(L.ids))
        # The seeds stay in the fitted part.
        order = np.concatenate(
            [[i for i in order if L.ids[i] in seeds], [i for i in order if L.ids[i] not in seeds]]
        )
        fit_i, new_i = np.sort(order[:n_fit]), np.sort(order[n_fit:])
        t0 = time.time()
        model = fit_arrays(
            L.ids[fit_i], L.vectors[fit_i], R.ids, R.vectors, split.seeds[:, 0], split.seeds[:, 1]
        )
        fit_s = time.time() - t0
        t0 = time.time()
        links, _ = model.link_arrays(
            L.ids[new_i],
            L.vectors[new_i],
            R.ids,
            R.vectors,
            existing_ids=L.ids[fit_i],
            existing=L.vectors[fit_i],
        )
        new_s = time.time() - t0
        new_ids = set(L.ids[new_i].tolist())
        got = set(zip(links.left_id.tolist(), links.right_id.tolist(), strict=True))
        ref = {p for p in refit_links if p[0] in new_ids}
        true_new = {p for p in truth if p[0] in new_ids}
        row = {
            "more_rows": more,
            "fitted_rows": len(fit_i),
            "new_rows": len(new_i),
            "fit_seconds": round(fit_s, 1),
            "new_rows_seconds": round(new_s, 2),
            "new_links": len(got),
            "refit_links_of_new_rows": len(ref),
            "p_vs_refit": round(len(got & ref) / max(len(got), 1), 4),
            "r_vs_refit": round(len(got & ref) / max(len(ref), 1), 4),
            "p_vs_truth": round(len(got & truth) / max(len(got), 1), 4),
            "r_vs_truth": round(len(got & truth) / max(len(true_new), 1), 4),
            "refit_p_vs_truth": round(len(ref & truth) / max(len(ref), 1), 4),
            "refit_r_vs_truth": round(len(ref & truth) / max(len(true_new), 1), 4),
        }
        log.info("new rows: %s", row)
        out.append(row)
    return out


THREE = ("all-MiniLM-L6-v2", "multilingual-e5-small", "all-mpnet-base-v2")


def triangles(args: argparse.Namespace, corpus: str) -> dict[str, Any]:
    """Three tables of one corpus by three encoders, linked pairwise; a link A-B is confirmed when some
    row c of C has links B-C and A-C to its two ends. P/R of A-B with and without the check.

    Three-way split in the protocol's spirit: a shared part S (alpha of the objects) in all three tables,
    the rest in thirds, one table each; fresh random ids per table; 15 seeds drawn from S, the same
    objects seeding every pair."""
    rng = np.random.default_rng([args.seed, 3])
    corpora = [load_corpus(args.data_dir, corpus, name) for name in THREE]
    common = corpora[0][0]
    for ids, _ in corpora[1:]:
        common = np.intersect1d(common, ids)
    perm = rng.permutation(common)
    n_s = int(round(args.alpha * len(perm)))
    shared, rest = perm[:n_s], perm[n_s:]
    third = len(rest) // 3
    objects = [np.concatenate([shared, rest[i * third : (i + 1) * third]]) for i in range(3)]
    fresh = rng.choice(2**53 - 1, size=sum(len(o) for o in objects), replace=False) + 1
    tables, start = [], 0
    for (ids, x), objs in zip(corpora, objects, strict=True):
        pos = dict(zip(ids.tolist(), range(len(ids)), strict=True))
        order = rng.permutation(len(objs))
        objs = objs[order]
        tables.append((fresh[start : start + len(objs)], x[[pos[o] for o in objs.tolist()]], objs))
        start += len(objs)
    seed_objs = rng.choice(shared, size=15, replace=False)

    def id_of(t: int, objs: np.ndarray) -> np.ndarray:
        m = dict(zip(tables[t][2].tolist(), tables[t][0].tolist(), strict=True))
        return np.asarray([m[o] for o in objs.tolist()])

    links: dict[tuple[str, str], pd.DataFrame] = {}
    seconds = {}
    for a, b in ((0, 1), (1, 2), (0, 2)):
        t0 = time.time()
        m = fit_arrays(
            tables[a][0], tables[a][1], tables[b][0], tables[b][1], id_of(a, seed_objs), id_of(b, seed_objs)
        )
        seconds[f"{a}-{b}"] = round(time.time() - t0, 1)
        links[(str(a), str(b))] = m.links
    # The library's triangle check (veclink_spark.multi, as jobs/link_many.py runs it on Spark).
    checked = confirm_arrays(links)
    ab = checked[(checked.left_table == "0") & (checked.right_table == "1") & ~checked.is_seed]
    keys = list(zip(ab.left_id.astype(np.int64).tolist(), ab.right_id.astype(np.int64).tolist(), strict=True))
    pairs_ab = set(keys)
    confirmed = {k for k, ok in zip(keys, ab.confirmed.tolist(), strict=True) if ok}
    truth = set(zip(id_of(0, shared).tolist(), id_of(1, shared).tolist(), strict=True))
    truth -= set(zip(id_of(0, seed_objs).tolist(), id_of(1, seed_objs).tolist(), strict=True))

    def prf(got: set) -> dict[str, float | int]:
        ok = len(got & truth)
        p, r = ok / max(len(got), 1), ok / max(len(truth), 1)
        return {
            "links": len(got),
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(2 * p * r / max(p + r, 1e-12), 4),
        }

    out = {
        "encoders": list(THREE),
        "rows": [len(t[0]) for t in tables],
        "seconds": seconds,
        "pair A-B alone": prf(pairs_ab),
        "pair A-B confirmed by C": prf(confirmed),
    }
    log.info("%s: triangles %s", corpus, out)
    return out


def report(results: dict[str, Any], command: str) -> str:
    lines = [
        "# What users do with the links: merged index, clustering, new rows",
        "",
        f"Command: `{command}`. Pair: {LEFT} (left) and {RIGHT} (right, the target space), alpha "
        f"{results['alpha']}, 15 in-domain seeds, split seed {results['seed']}, in-process engine, default "
        "configuration. Written by `benchmarks/use_cases.py`; numbers are from `results.json`.",
        "",
    ]
    for corpus, r in results["corpora"].items():
        f = r["fit"]
        lines += [
            f"## {corpus}",
            "",
            f"Fit: {f['links']} links, P {f['precision']}, R {f['recall']}, verdict {f['verdict']}, "
            f"{f['seconds']} s. {r['queries']} queries.",
            "",
            "| index | rows | recall@10 | NDCG@10 | NDCG gap to oracle |",
            "|---|---:|---:|---:|---:|",
        ]
        oracle = r["retrieval"]["oracle"]["ndcg@10"]
        for name, m in r["retrieval"].items():
            rows = r["index_rows"].get(name, "two indexes")
            gap = round(oracle - m["ndcg@10"], 4)
            lines.append(f"| {name} | {rows} | {m['recall@10']} | {m['ndcg@10']} | {gap} |")
        lines += ["", "Clustering (k-means, k = 100), adjusted Rand index against the oracle index's:", ""]
        lines += ["| clustering | ARI |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in r["clustering_ari"].items()]
        lines += [
            "",
            "New rows (fit on part of the left table, link the rest later; refit = one run on the whole):",
            "",
            "| more rows | fitted | new | fit s | link new s | new links | P / R vs refit | P / R vs truth "
            "| refit P / R vs truth |",
            "|---:|---:|---:|---:|---:|---:|---|---|---|",
        ]
        for n in r["new_rows"]:
            cells = [
                f"{int(n['more_rows'] * 100)} %",
                n["fitted_rows"],
                n["new_rows"],
                n["fit_seconds"],
                n["new_rows_seconds"],
                n["new_links"],
                f"{n['p_vs_refit']} / {n['r_vs_refit']}",
                f"{n['p_vs_truth']} / {n['r_vs_truth']}",
                f"{n['refit_p_vs_truth']} / {n['refit_r_vs_truth']}",
            ]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        t = r["triangles"]
        lines += [
            "",
            f"Three models ({', '.join(t['encoders'])} = A, B, C; {t['rows']} rows), linked pairwise; a link "
            "A-B is confirmed when a row of C is linked to both its ends:",
            "",
            "| A-B links | links | P | R | F1 |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ("pair A-B alone", "pair A-B confirmed by C"):
            m = t[name]
            lines.append(f"| {name} | {m['links']} | {m['precision']} | {m['recall']} | {m['f1']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--corpus", nargs="+", default=["wordnet", "debian"])
    p.add_argument("--out", default="benchmarks/use_cases")
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--alpha", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("veclink_spark").setLevel(logging.WARNING)
    if not (Path(args.data_dir) / args.corpus[0]).is_dir():
        sys.stderr.write(f"use_cases: no corpus under {args.data_dir!r} (give --data-dir)\n")
        return 2
    command = "python benchmarks/use_cases.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict[str, Any] = {"alpha": args.alpha, "seed": args.seed, "corpora": {}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for corpus in args.corpus:  # the report is rewritten after each corpus (a long run shows progress)
        results["corpora"][corpus] = run_corpus(args, corpus)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "REPORT.md").write_text(report(results, command.strip()) + "\n")
    print(report(results, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
