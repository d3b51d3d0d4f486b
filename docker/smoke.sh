#!/usr/bin/env bash
# Build the api image with podman and prove it serves: Redis and the api run as containers, an
# encode and asks go through the container, /metrics counts them, then everything is removed.
#
#   bash docker/smoke.sh 2>&1 | tee results/smoke.log
#
# Environment:
#   REBUILD_BASE=1     debootstrap the Debian base again (otherwise the local image is reused)
#   SMOKE_NO_CACHE=1   build the api and redis images without podman's layer cache
#   SMOKE_WHEELS=DIR   local wheels for the build (default: pip's find-links, e.g. /opt/wheels)
#   SMOKE_CA_BUNDLE=F  CA bundle mounted into the build for pip (default: $PIP_CERT when set; needed
#                      behind a TLS-inspecting proxy). Never written into an image layer.
#   RECKONING_MODEL    folder under models/ to serve (default reckoning-full-k2)
#
# Images are kept as podman's build cache. To reclaim the disk:
#   podman rmi localhost/reckoning-api:smoke localhost/reckoning-redis:smoke localhost/reckoning-base:bookworm
#   podman image prune        (removes every dangling image, including other projects')
#
# Podman flags from DESIGN §4: runc, cgroupfs, the host network, and CONTAINERS_CONF without default
# ulimits or pids limit. With the host network both containers listen on 127.0.0.1 only, on free ports.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"

BASE_IMAGE="${BASE_IMAGE:-localhost/reckoning-base:bookworm}"
API_IMAGE="localhost/reckoning-api:smoke"
REDIS_IMAGE="localhost/reckoning-redis:smoke"
MODEL="${RECKONING_MODEL:-reckoning-full-k2}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO/docker/podman/containers.conf}"

started=$SECONDS
say() { printf '[smoke %4ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { say "FAIL: $*" >&2; exit 1; }
# No systemd here, so podman cannot schedule a container's healthcheck timer and says so on every
# run/stop; the script runs the image's HEALTHCHECK itself (podman healthcheck run) and drops that noise.
p() { podman --runtime runc --cgroup-manager=cgroupfs "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {}, {"d": d}))' "$1"; }

for tool in podman runc curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install podman runc curl)"
done
[[ -f requirements.lock ]] || die "requirements.lock is missing: the image installs through the lock"
[[ -d "models/$MODEL" ]] || die "models/$MODEL not found"

work="$(mktemp -d /tmp/reckoning-smoke.XXXXXX)"
suffix="$$"
redis_ctr="reckoning-smoke-redis-$suffix"
api_ctr="reckoning-smoke-api-$suffix"
cleanup() {
  local rc=$?
  if ((rc != 0)); then
    for ctr in "$api_ctr" "$redis_ctr"; do
      p container exists "$ctr" 2>/dev/null || continue
      echo "---- last log lines of $ctr"
      p logs --tail 40 "$ctr" 2>&1 || true
    done
  fi
  p rm -f -t 5 "$api_ctr" "$redis_ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
  say "cleaned up (containers removed; images kept as the build cache)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), $(nproc) CPUs, CONTAINERS_CONF=${CONTAINERS_CONF#"$REPO"/}"
say "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- 1. images
t0=$SECONDS
bash docker/base-image.sh "$BASE_IMAGE" | sed 's/^/    /'
say "base image ready in $((SECONDS - t0)) s"

wheels="${SMOKE_WHEELS:-$(pip config get global.find-links 2>/dev/null || true)}"
ca_bundle="${SMOKE_CA_BUNDLE:-${PIP_CERT:-}}"
build_args=(--format docker --network host --layers --build-arg "BASE_IMAGE=$BASE_IMAGE")
[[ "${SMOKE_NO_CACHE:-0}" == 1 ]] && build_args+=(--no-cache)
if [[ -n "$wheels" && -d "$wheels" ]]; then
  # The local CPU torch wheel: no multi-GB download, and no index other than PyPI needed.
  build_args+=(--build-context "wheels=$wheels" --build-arg TORCH_INDEX_URL=)
  say "local wheels: $wheels ($(find "$wheels" -maxdepth 1 -name '*.whl' | wc -l) wheels)"
fi
if [[ -n "$ca_bundle" && -f "$ca_bundle" ]]; then
  build_args+=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
fi

build() {  # build NAME DOCKERFILE: full output to a file, step lines to the log
  local name="$1" file="$2" t=$SECONDS
  if ! p build "${build_args[@]}" -f "$file" --ignorefile docker/Dockerfile.dockerignore -t "$name" . \
      > "$work/build.log" 2>&1; then
    tail -60 "$work/build.log"
    die "building $name failed"
  fi
  # One line per step, marked when podman's layer cache served it.
  awk '/^(\[[0-9]+\/[0-9]+\] )?STEP/ {if (s) print s; s = substr($0, 1, 110)} /^--> Using cache/ {s = s "  [cached]"}
       END {if (s) print s}' "$work/build.log" | sed 's/^/    /'
  say "built $name in $((SECONDS - t)) s"
}
build "$API_IMAGE" docker/Dockerfile
build "$REDIS_IMAGE" docker/Dockerfile.redis

# ---------------------------------------------------------------- 2. what is (not) in the image
user="$(p image inspect --format '{{.Config.User}}' "$API_IMAGE")"
health="$(p image inspect --format '{{json .Config.Healthcheck}}' "$API_IMAGE")"
[[ -n "$user" && "$user" != root && "$user" != 0 ]] || die "the image runs as root (USER '$user')"
[[ "$health" == *healthz* ]] || die "the image has no HEALTHCHECK (build with --format docker)"
say "image user: $user; healthcheck: $(echo "$health" | json 'd["Test"][-1][:60]')..."
p run --rm --network host --health-interval=disable --entrypoint python "$API_IMAGE" -c '
import importlib.util, shutil, sys
tools = [t for t in ("gcc", "cc", "c++", "make", "ld", "pip", "pip3", "git") if shutil.which(t)]
mods = [m for m in ("pip", "pytest", "ruff", "mypy", "schemathesis", "hypothesis", "faker") if importlib.util.find_spec(m)]
print("    build tools found:", tools or "none", "| test/build packages found:", mods or "none")
sys.exit(1 if tools or mods else 0)' || die "build tools or test dependencies in the final image"

# ---------------------------------------------------------------- 3. run Redis and the api
redis_port="$(free_port)"
api_port="$(free_port)"
redis_password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
api_key="smoke-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
url="http://127.0.0.1:$api_port"

# Only loopback on the host network; the password comes from the environment as in compose.
p run -d --name "$redis_ctr" --network host --health-interval=disable \
  -e REDISCLI_AUTH="$redis_password" \
  -v "$REPO/docker/redis.conf:/etc/redis/reckoning.conf:ro" \
  "$REDIS_IMAGE" redis-server /etc/redis/reckoning.conf \
  --bind 127.0.0.1 --port "$redis_port" --requirepass "$redis_password" >/dev/null
for _ in $(seq 50); do
  [[ "$(p exec "$redis_ctr" redis-cli -p "$redis_port" ping 2>/dev/null)" == PONG ]] && break
  sleep 0.2
done
[[ "$(p exec "$redis_ctr" redis-cli -p "$redis_port" ping)" == PONG ]] || die "redis did not answer"
[[ "$(p exec -e REDISCLI_AUTH= "$redis_ctr" redis-cli -p "$redis_port" ping 2>&1)" == *NOAUTH* ]] \
  || die "redis answers without the password"
say "redis up on 127.0.0.1:$redis_port ($(p exec "$redis_ctr" redis-server --version | awk '{print $3}')), password required"

p run -d --name "$api_ctr" --network host --health-interval=disable \
  -v "$REPO/models:/models:ro" \
  -e RECKONING_HOST=127.0.0.1 -e RECKONING_PORT="$api_port" \
  -e RECKONING_MODEL_DIR="/models/$MODEL" \
  -e RECKONING_REDIS_URL="redis://:$redis_password@127.0.0.1:$redis_port/0" \
  -e RECKONING_API_KEYS="{\"$api_key\": \"smoke\"}" \
  -e RECKONING_TORCH_THREADS=1 -e OMP_NUM_THREADS=1 \
  "$API_IMAGE" >/dev/null
t0=$SECONDS
until curl -fsS "$url/readyz" -o "$work/ready.json" 2>/dev/null; do
  [[ "$(p inspect --format '{{.State.Running}}' "$api_ctr")" == true ]] || die "the api container exited"
  ((SECONDS - t0 < 180)) || die "/readyz not ready after 180 s"
  sleep 0.5
done
say "api ready after $((SECONDS - t0)) s: $(cat "$work/ready.json")"
say "HEALTHCHECK: $(p healthcheck run "$api_ctr" && echo healthy)"

# ---------------------------------------------------------------- 4. encode and ask through the container
auth=(-H "Authorization: Bearer $api_key")
status="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"facts": ["x."]}' "$url/encode")"
[[ "$status" == 401 ]] || die "POST /encode without a key answered $status, expected 401"
say "POST /encode without the key -> 401"

# A ProofWriter dev theory (owa_dev_natlang AttNonegNatLang-OWA-235, also the playground's example):
# Bob is round in 1 step, big in 2, young in 3; whether Fred is young is unknown.
facts='{"facts": ["Bob is nice.", "Bob is kind.", "Bob is blue.", "Fred is green.", "Fred is blue.",
  "Harry is round.", "Harry is blue.", "If someone is kind and nice then they are round.",
  "If someone is green and kind and round then they are young.",
  "If someone is big and kind and round then they are red.", "If someone is big and blue then they are young.",
  "If someone is nice and round then they are big.", "If someone is rough and blue and round then they are nice."]}'
curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -d "$facts" "$url/encode" -o "$work/encode.json" \
  || die "POST /encode failed"
say "POST /encode -> $(cat "$work/encode.json")"
kid="$(json 'd["knowledge_id"]' < "$work/encode.json")"
[[ "$(json 'd["cached"]' < "$work/encode.json")" == False ]] || die "a fresh set came back cached"

ask="{\"knowledge_id\": \"$kid\", \"questions\": [\"Bob is young.\", \"Bob is not big.\", \"Fred is young.\"]}"
curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -d "$ask" "$url/ask" -o "$work/ask.json" \
  || die "POST /ask failed"
say "POST /ask -> $(cat "$work/ask.json")"
say "answers: $(json "'; '.join(a['question'] + ' ' + a['answer'] + ' (p=%.2f)' % a['scores'][a['answer']] for a in d['answers'])" < "$work/ask.json")"

curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -d "$facts" "$url/encode" -o "$work/encode2.json"
[[ "$(json 'd["cached"]' < "$work/encode2.json")" == True ]] || die "re-encoding the same set was not cached"
say "POST /encode again -> cached: true, encode_ms: $(json 'd["encode_ms"]' < "$work/encode2.json")"

curl -fsS "$url/playground" | grep -q '<title>reckoning playground</title>' || die "GET /playground failed"
curl -fsS "$url/playground/playground.js" -o /dev/null || die "the playground's script is not served"
say "GET /playground -> 200 (page and script served from the installed package)"

# The CLI shipped in the image, run inside the api container.
cli="$(p exec -e RECKONING_API_KEY="$api_key" "$api_ctr" reckoning ask --url "$url" "$kid" "Bob is round.")"
say "reckoning ask (inside the container) \"Bob is round.\" -> $(echo "$cli" | json 'd["answers"][0]["answer"]')"
keys="$(p exec "$redis_ctr" redis-cli -p "$redis_port" --scan --pattern 'reckoning*' | wc -l)"
((keys > 0)) || die "nothing was written to Redis"
say "redis holds $keys reckoning keys (facts and delta)"

# ---------------------------------------------------------------- 5. metrics
curl -fsS "$url/metrics" -o "$work/metrics.txt"
grep -E '^reckoning_(encode|ask)_seconds_count|^reckoning_requests_total\{.*route="/(encode|ask)"' "$work/metrics.txt" \
  | sed 's/^/    /'
encodes="$(awk '/^reckoning_encode_seconds_count/ {print $2}' "$work/metrics.txt")"
asks="$(awk '/^reckoning_ask_seconds_count/ {print $2}' "$work/metrics.txt")"
[[ "${encodes%.*}" -ge 1 && "${asks%.*}" -ge 1 ]] || die "/metrics did not count the encode and the ask"
say "GET /metrics: reckoning_encode_seconds_count=$encodes, reckoning_ask_seconds_count=$asks"

# ---------------------------------------------------------------- 6. stop
t0=$SECONDS
p stop -t 20 "$api_ctr" >/dev/null
say "api stopped in $((SECONDS - t0)) s, exit code $(p inspect --format '{{.State.ExitCode}}' "$api_ctr")"
p logs "$api_ctr" 2>&1 | grep -E 'Shutting down|Finished server process|serving ' | sed 's/^/    /' || true
p stop -t 10 "$redis_ctr" >/dev/null

api_size="$(p image inspect --format '{{.Size}}' "$API_IMAGE")"
redis_size="$(p image inspect --format '{{.Size}}' "$REDIS_IMAGE")"
base_size="$(p image inspect --format '{{.Size}}' "$BASE_IMAGE")"
say "image size: $API_IMAGE $((api_size / 1000000)) MB (base $((base_size / 1000000)) MB); $REDIS_IMAGE $((redis_size / 1000000)) MB"
say "OK in $((SECONDS - started)) s"
