#!/usr/bin/env bash
# Fetch the Groovy 4 jars the static Nextflow tests parse .nf files with (tests/test_nextflow_static.py).
# They ship inside the npm package npm-groovy-lint; only its jars are used (Java 17 runs them).
#   scripts/install_groovy_parser.sh [DIR]     default DIR: $GRAPHIMPUTE_GROOVY_DIR or ~/.cache/graphimpute/groovy
# The tests find the jars through GRAPHIMPUTE_GROOVY_DIR (or the same default folder).
set -euo pipefail

VERSION=18.0.0
DIR="${1:-${GRAPHIMPUTE_GROOVY_DIR:-$HOME/.cache/graphimpute/groovy}}"
JAR_DIR="$DIR/node_modules/npm-groovy-lint/lib/java/groovy/lib"

if ls "$JAR_DIR"/groovy-4.*.jar >/dev/null 2>&1; then
    echo "Groovy parser already in $DIR"
    exit 0
fi
command -v npm >/dev/null || { echo "npm is needed to fetch npm-groovy-lint" >&2; exit 1; }
command -v java >/dev/null || echo "warning: no java on PATH; the Groovy parse test will be skipped" >&2
mkdir -p "$DIR"
# --ignore-scripts: nothing runs at install time; the package's own linter (and its Node version needs) is unused.
npm install --prefix "$DIR" --no-audit --no-fund --ignore-scripts --loglevel=error "npm-groovy-lint@$VERSION"
ls "$JAR_DIR"/groovy-4.*.jar
