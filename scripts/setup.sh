#!/usr/bin/env bash
# Prepare this machine to run veclink-spark and its tests. Idempotent: run it (or source it) as often
# as you like; finished steps are skipped.
#
#   bash scripts/setup.sh      # install + fetch jars
#   source scripts/setup.sh    # same, and keep JAVA_HOME, SPARK_LOCAL_IP, PYSPARK_PYTHON in this shell
#
# Steps:
#   1. pip install -e ".[spark,dev]" (skipped when this checkout is already installed with the same
#      setup.cfg/pyproject.toml; VECLINK_FORCE_INSTALL=1 forces it). pip's own settings (PIP_FIND_LINKS,
#      PIP_INDEX_URL, ...) are used as they are.
#   2. scripts/fetch_jars.sh: the Delta jars into ${VECLINK_JARS_DIR:-~/.cache/veclink-spark/jars}.
#   3. export JAVA_HOME (Java 17), SPARK_LOCAL_IP=127.0.0.1, PYSPARK_PYTHON (this python3).
# Set PYTHON to use another interpreter than python3.
#
# When sourced, it does not change the caller's shell options and returns non-zero on failure.

_vl_main() {
  local repo python pyexe stamp_dir stamp want
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
  python="${PYTHON:-python3}"

  # --- Java ------------------------------------------------------------------------------------
  if [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
    export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
  elif [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
    export JAVA_HOME
  elif command -v java >/dev/null 2>&1; then
    JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
    export JAVA_HOME
  else
    echo "setup: no Java found: install a JDK 17 (apt-get install openjdk-17-jdk-headless) or set JAVA_HOME" >&2
    return 1
  fi
  local jver
  jver="$("${JAVA_HOME}/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  if [[ -z "$jver" || "$jver" -lt 17 ]]; then
    echo "setup: ${JAVA_HOME} holds Java '${jver:-unknown}', Spark 4 needs Java 17 or 21: set JAVA_HOME" >&2
    return 1
  fi

  # --- Python package --------------------------------------------------------------------------
  pyexe="$("$python" -c 'import sys; print(sys.executable)')" || {
    echo "setup: cannot run '$python': install Python >= 3.10 or set PYTHON" >&2
    return 1
  }
  stamp_dir="${XDG_CACHE_HOME:-$HOME/.cache}/veclink-spark"
  mkdir -p "$stamp_dir" || return 1
  want="$(cat "$repo/setup.cfg" "$repo/pyproject.toml" | sha256sum | cut -c1-16)-$pyexe"
  stamp="$stamp_dir/install-$(printf '%s' "$repo" | sha256sum | cut -c1-16).stamp"
  if [[ "${VECLINK_FORCE_INSTALL:-0}" != "1" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && (cd / && "$pyexe" -c "
import sys, veclink_spark, pyspark, delta, pytest
sys.exit(0 if veclink_spark.__file__.startswith('$repo/') else 1)
" >/dev/null 2>&1); then
    echo "setup: veclink-spark already installed from $repo"
  else
    echo "setup: pip install -e '.[spark,dev]' with $pyexe"
    (cd "$repo" && "$pyexe" -m pip install -q -e ".[spark,dev]") || {
      echo "setup: pip install failed (see above)" >&2
      return 1
    }
    printf '%s' "$want" >"$stamp"
  fi

  # --- Delta jars --------------------------------------------------------------------------------
  bash "$repo/scripts/fetch_jars.sh" || {
    echo "setup: fetching the Delta jars failed (see above)" >&2
    return 1
  }

  # --- Spark environment -------------------------------------------------------------------------
  export SPARK_LOCAL_IP=127.0.0.1
  # The resolved interpreter (not a pyenv shim), so executors run the same python with pandas/pyarrow.
  export PYSPARK_PYTHON="$pyexe"
  echo "setup: JAVA_HOME=$JAVA_HOME SPARK_LOCAL_IP=$SPARK_LOCAL_IP PYSPARK_PYTHON=$PYSPARK_PYTHON"
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  _vl_main
  _vl_rc=$?
  unset -f _vl_main
  return "$_vl_rc"
else
  set -uo pipefail
  _vl_main
  exit $?
fi
