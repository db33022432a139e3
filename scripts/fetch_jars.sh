#!/usr/bin/env bash
# Fetch the two jars Delta Lake needs on Spark (delta-spark and delta-storage) into the jar cache
# that veclink_spark.session.delta_jars() reads: ${VECLINK_JARS_DIR:-~/.cache/veclink-spark/jars}.
# Jars already there are skipped, so running it again is cheap. Installs Maven with apt-get when mvn
# is missing (needs root or sudo). Maven uses the user's own settings and mirrors.
#
# Overridable: VECLINK_JARS_DIR, DELTA_VERSION (4.4.0), DELTA_SPARK_LINE (4.2 = Spark major.minor),
# SCALA_BINARY (2.13). Keep DELTA_VERSION equal to veclink_spark/session.py's DELTA_VERSION.
# A Spark Connect server (tests/test_spark_connect.py) needs the same two jars: pyspark ships the server
# (jars/spark-connect_2.13), and the library does not use Delta's Python DeltaTable on Connect, so Delta's
# Connect server plugin (io.delta:delta-connect-server, not served for Delta 4.4.0) is not fetched.
set -euo pipefail

jars_dir="${VECLINK_JARS_DIR:-$HOME/.cache/veclink-spark/jars}"
delta_version="${DELTA_VERSION:-4.4.0}"
spark_line="${DELTA_SPARK_LINE:-4.2}"
scala_binary="${SCALA_BINARY:-2.13}"

artifacts=(
  "io.delta:delta-spark_${spark_line}_${scala_binary}:${delta_version}"
  "io.delta:delta-storage:${delta_version}"
)

mkdir -p "$jars_dir"

missing=()
for coord in "${artifacts[@]}"; do
  IFS=: read -r _group artifact version <<<"$coord"
  if [[ -s "$jars_dir/${artifact}-${version}.jar" ]]; then
    echo "fetch_jars: ${artifact}-${version}.jar already in $jars_dir"
  else
    missing+=("$coord")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if ! command -v mvn >/dev/null 2>&1; then
  echo "fetch_jars: mvn not found; installing Maven with apt-get" >&2
  sudo_cmd=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo_cmd=(sudo)
    else
      echo "fetch_jars: not root and no sudo: install Maven (mvn) yourself, or put the jars in $jars_dir" >&2
      exit 1
    fi
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq maven >/dev/null
fi

for coord in "${missing[@]}"; do
  echo "fetch_jars: fetching $coord into $jars_dir"
  mvn -q -B dependency:copy "-Dartifact=$coord" "-DoutputDirectory=$jars_dir"
done
