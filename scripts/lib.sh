# What the scripts that start services from the debug build share: BIN (the folder of the
# built executables), WORK (a temporary folder), PIDS (what they start, each stopped at exit
# with WORK removed), and free_port. Sourced, after `set -euo pipefail`.
BIN=${BIN:?set BIN to the folder of the built executables}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
