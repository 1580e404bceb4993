#!/usr/bin/env bash
# Resolve the Nextflow engine from Maven Central and install a launcher for it (`make nextflow`).
#
#   scripts/install_nextflow.sh [VERSION [LAUNCHER]]
#       VERSION   default: the pin in scripts/nextflow/pom.xml
#       LAUNCHER  default: .venv/bin/nextflow
#
# The jars (Nextflow and its runtime dependencies, ~40 MB) go to .nextflow-dist/<VERSION>/lib (ignored by
# git); the launcher starts them as Nextflow's own launcher does: the same JVM options (UTF-8, headless,
# the --add-opens list Java 17 needs, fast start-up for commands other than `run`), NXF_OPTS and
# NXF_TEMP honoured. It runs offline (NXF_OFFLINE=true unless set): the pipeline needs no plugin.
# Maven Central lacks two artifacts of 25.04.4's dependency tree: nf-lang is served at 25.04.0 only (the
# pom pins that) and io.seqera:lib-trace not at all (excluded: only the HTTP client of the Seqera Platform
# and plugin downloads use it, and an offline run makes neither). Older engines for the manifest's oldest
# admitted version: scripts/install_nextflow.sh 24.10.0 .nextflow-dist/24.10.0/nextflow
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
POM="$ROOT/scripts/nextflow/pom.xml"
PINNED="$(sed -n 's:.*<nextflow.version>\(.*\)</nextflow.version>.*:\1:p' "$POM")"
VERSION="${1:-$PINNED}"
LAUNCHER="${2:-$ROOT/.venv/bin/nextflow}"
LIB="$ROOT/.nextflow-dist/$VERSION/lib"

command -v java >/dev/null || { echo "error: Nextflow needs Java 17 (java not on PATH)" >&2; exit 1; }
if ! ls "$LIB"/nextflow-"$VERSION".jar >/dev/null 2>&1; then
    command -v mvn >/dev/null || { echo "error: mvn is needed to resolve Nextflow $VERSION" >&2; exit 1; }
    echo "Resolving Nextflow $VERSION and its dependencies through Maven into $LIB"
    rm -rf "$LIB.tmp"
    mvn -B -q -Dstyle.color=never -f "$POM" -Dnextflow.version="$VERSION" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIB.tmp" 2>&1 | sed "s/\x1b\[[0-9;]*m//g"
    rm -rf "$LIB"
    mv "$LIB.tmp" "$LIB"
fi

mkdir -p "$(dirname "$LAUNCHER")"
cat > "$LAUNCHER.tmp" <<EOF
#!/usr/bin/env bash
# Nextflow $VERSION from $LIB (written by scripts/install_nextflow.sh).
NXF_LIB='$LIB'
EOF
cat >> "$LAUNCHER.tmp" <<'EOF'
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA_CMD="$JAVA_HOME/bin/java"; else JAVA_CMD=java; fi
export NXF_OFFLINE="${NXF_OFFLINE:-true}"
export NXF_CLI="$0 $*"
export COLUMNS="${COLUMNS:-$(tput cols 2>/dev/null || true)}"
opts=(-Dfile.encoding=UTF-8 -Djava.awt.headless=true -Dcom.sun.security.enableAIAcaIssuers=true)
cmd=""
for arg in "$@"; do [[ "$arg" != -* ]] && { cmd="$arg"; break; }; done
[[ "$cmd" != run && "$cmd" != node ]] && opts+=(-XX:+TieredCompilation -XX:TieredStopAtLevel=1)
[[ -n "${NXF_OPTS:-}" ]] && opts+=($NXF_OPTS)
[[ -n "${NXF_TEMP:-}" ]] && opts+=(-Djava.io.tmpdir="$NXF_TEMP")
for pkg in java.lang java.io java.nio java.net java.util java.util.concurrent.locks java.util.concurrent.atomic \
           java.nio.file.spi sun.nio.ch sun.nio.fs sun.net.www.protocol.http sun.net.www.protocol.https \
           sun.net.www.protocol.ftp sun.net.www.protocol.file jdk.internal.misc jdk.internal.vm java.util.regex; do
    opts+=(--add-opens=java.base/$pkg=ALL-UNNAMED)
done
exec "$JAVA_CMD" "${opts[@]}" -cp "$NXF_LIB/*" nextflow.cli.Launcher "$@"
EOF
chmod +x "$LAUNCHER.tmp"
mv "$LAUNCHER.tmp" "$LAUNCHER"
"$LAUNCHER" -version | grep -q "version $VERSION" || { echo "error: $LAUNCHER does not start Nextflow $VERSION" >&2; exit 1; }
echo "Nextflow $VERSION: $LAUNCHER"
