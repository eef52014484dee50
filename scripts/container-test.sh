#!/usr/bin/env bash
# `make container-test`: the suite in containers, as compose.yaml runs it, without a Docker
# engine. Builds a Debian bookworm root filesystem with debootstrap (cached under
# .build/container), adds the release binaries and the Swift runtime libraries they link,
# imports it into podman as one image, starts the five services on their own podman
# network (each finds the others by name), then from a sixth container on that network
# checks every service's health and makes one real call to each. Always cleans up.
#   BIN   the release binaries (default: swift build -c release --show-bin-path)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$(swift build -c release --show-bin-path)}
WORK=.build/container
ROOTFS=$WORK/rootfs
IMAGE=localhost/persona:container-test
NET=persona-ct-$$
# The ulimits fit a sandbox's own limits. NET_ADMIN: on the kernel of the machines this was
# built on, setsockopt on a container's TCP sockets (TCP_NODELAY, which the RPC sets) is
# refused with EACCES without it; a stock Docker or podman host does not need it.
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1000:1000 --cap-add NET_ADMIN)
KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
SERVICES=(ingest:7101 feature:7102 model:7103 risk-control:7104 recommend:7105)

cleanup() {
    for s in "${SERVICES[@]}"; do podman rm -f "ct-${s%%:*}-$$" >/dev/null 2>&1 || true; done
    podman network rm -f "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ ! -f "$ROOTFS/.complete" ]; then
    echo "== debootstrap: Debian bookworm with the runtime libraries (once; cached in $ROOTFS)"
    rm -rf "$ROOTFS"
    mkdir -p "$WORK"
    debootstrap --variant=minbase --include=libprotobuf-c1,liblz4-1,libnats3.4,libsqlite3-0,libopenblas0-pthread,ca-certificates \
        bookworm "$ROOTFS" http://deb.debian.org/debian > "$WORK/debootstrap.log"
    touch "$ROOTFS/.complete"
fi

echo "== image $IMAGE: the root filesystem, the binaries, the Swift runtime"
STAGE=$WORK/stage
rm -rf "$STAGE"
cp -a "$ROOTFS" "$STAGE"
rm -f "$STAGE/.complete"
mkdir -p "$STAGE/usr/local/bin" "$STAGE/usr/lib/swift/linux" "$STAGE/data" "$STAGE/samples"
for p in persona persona-ingest persona-feature persona-model persona-risk-control persona-recommend persona-console; do
    cp "$BIN/$p" "$STAGE/usr/local/bin/"
    # The toolchain's libraries the binary links (the system ones come from Debian above).
    ldd "$BIN/$p" | awk '$3 ~ /\/swift\// {print $3}' | xargs -r -I{} cp -u {} "$STAGE/usr/lib/swift/linux/"
done
echo /usr/lib/swift/linux > "$STAGE/etc/ld.so.conf.d/swift.conf"
chroot "$STAGE" ldconfig
cp Samples/online-retail-2010-12.csv "$STAGE/samples/"
tar -C "$STAGE" -c . | podman import -q - "$IMAGE" > /dev/null
rm -rf "$STAGE"

# The OCI runtime: podman's default (crun on Debian) refuses every container on a host whose
# cgroups are in hybrid mode ("cgroups in hybrid mode not supported"), where runc works.
# Each runtime installed is tried with a throwaway container, the default first.
RUNTIME=()
errors=""
for candidate in "" runc crun; do
    if [ -n "$candidate" ]; then
        command -v "$candidate" > /dev/null || continue
        args=(--runtime "$(command -v "$candidate")")
    else
        args=()
    fi
    if out=$(podman run --rm "${args[@]}" "${LIMITS[@]}" "$IMAGE" /bin/true 2>&1); then
        RUNTIME=("${args[@]}")
        name=$candidate
        [ -n "$name" ] || name="the default, $(podman info --format '{{.Host.OCIRuntime.Name}}' 2> /dev/null)"
        echo "== OCI runtime: $name"
        break
    fi
    errors+="  ${candidate:-default}: $(tail -1 <<< "$out")"$'\n'
    RUNTIME=(none)
done
if [ "${RUNTIME[0]:-}" = none ]; then
    printf 'container-test FAILED: no OCI runtime here can start a container:\n%s' "$errors"
    echo "(on a host with cgroups in hybrid mode, install runc: apt-get install runc)"
    exit 1
fi

echo "== five services on network $NET"
podman network create "$NET" > /dev/null
ENV=(-e PERSONA_HOST=0.0.0.0 -e PERSONA_DATA_DIR=/data -e PERSONA_PSEUDONYM_KEY="$KEY" -e OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-}")
for s in "${SERVICES[@]}"; do
    name=${s%%:*}
    ENV+=(-e "PERSONA_$(tr 'a-z-' 'A-Z_' <<< "$name")_ADDR=ct-$name-$$:${s##*:}")
done
for s in "${SERVICES[@]}"; do
    name=${s%%:*}
    podman run -d "${RUNTIME[@]}" "${LIMITS[@]}" --network "$NET" --name "ct-$name-$$" "${ENV[@]}" -e PERSONA_PORT="${s##*:}" \
        "$IMAGE" "/usr/local/bin/persona-$name" > /dev/null
done

persona() { podman run --rm "${RUNTIME[@]}" "${LIMITS[@]}" --network "$NET" "${ENV[@]}" "$IMAGE" /usr/local/bin/persona "$@"; }
fail() { echo "container-test FAILED: $*"; for s in "${SERVICES[@]}"; do echo "-- ${s%%:*}"; podman logs --tail 20 "ct-${s%%:*}-$$" 2>&1; done; exit 1; }

echo "== health of every service, by name"
for _ in $(seq 1 60); do
    health=$(persona health 2>&1) && break
    sleep 1
done
echo "$health"
[ "$(grep -c " SERVING " <<< "$health")" -ge 5 ] || fail "not every service is serving"

echo "== one call per service"
persona import /samples/online-retail-2010-12.csv --format online-retail --wait || fail "ingest: import"
persona profile 17850 | head -1 | grep -q "user 17850" || fail "feature: profile"
persona train popularity > /dev/null || fail "model: train"
for _ in $(seq 1 50); do persona recommend 17850 -n 3 2> /dev/null | grep -q "popularity v1" && break; sleep 0.5; done
# Shown, then checked (not tee /dev/stderr: where stderr is a file, that truncates it).
answer=$(persona recommend 17850 -n 3) && echo "$answer"
grep -q "popularity v1" <<< "$answer" || fail "recommend: no answer from the new model"
answer=$(persona risk score --user 17850 --order ct-1 --amount 25) && echo "$answer"
grep -q "^decision " <<< "$answer" || fail "risk-control: score"
echo "container-test passed: five services in podman found each other by name and answered"
