#!/usr/bin/env bash
# Prometheus (Debian's package) scrapes a real `reckoning serve` with docker/prometheus.yml: the
# target must be up and reckoning_encode_seconds must show up in a query through the HTTP API.
#
#   bash docker/prometheus_check.sh 2>&1 | tee results/prometheus_check.log
#
# docker/prometheus.yml targets `api:8000`, the compose service name, which only resolves inside
# compose's network. Here the api runs on the host, so the check scrapes a copy of the file in which
# only that target is replaced by 127.0.0.1:PORT; the job, metrics path and intervals are the file's.
# Everything listens on 127.0.0.1, on free ports.
#
# Environment: RECKONING_MODEL_DIR (default models/reckoning-full-k2), PYTHON (default python).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python}"
MODEL_DIR="${RECKONING_MODEL_DIR:-models/reckoning-full-k2}"

started=$SECONDS
say() { printf '[prometheus-check %3ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { say "FAIL: $*" >&2; exit 1; }
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { "$PYTHON" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {}, {"d": d}))' "$1"; }
# wait_ready NAME PID URL TRIES: poll URL every 0.5 s until it answers; die when process PID exits first or
# when TRIES polls go unanswered.
wait_ready() {
  local name=$1 pid=$2 url=$3 tries=$4
  for _ in $(seq "$tries"); do
    curl -fsS "$url" -o /dev/null 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || die "$name exited"
    sleep 0.5
  done
  curl -fsS "$url" -o /dev/null || die "$name not ready"
}

command -v prometheus >/dev/null || die "prometheus is not installed (apt-get install prometheus)"
command -v reckoning >/dev/null || die "reckoning is not installed (pip install -e '.[serve]')"

work="$(mktemp -d /tmp/reckoning-prom.XXXXXX)"
api_pid=""
prom_pid=""
cleanup() {
  local rc=$?
  if ((rc != 0)); then
    echo "---- api log"; tail -20 "$work/api.log" 2>/dev/null || true
    echo "---- prometheus log"; tail -20 "$work/prometheus.log" 2>/dev/null || true
  fi
  for pid in "$prom_pid" "$api_pid"; do
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

api_port="$(free_port)"
prom_port="$(free_port)"
api="http://127.0.0.1:$api_port"
prom="http://127.0.0.1:$prom_port"

# ---------------------------------------------------------------- the api
RECKONING_SQLITE_PATH="$work/knowledge.sqlite3" RECKONING_TORCH_THREADS=1 OMP_NUM_THREADS=1 \
  reckoning serve --host 127.0.0.1 --port "$api_port" --model "$MODEL_DIR" > "$work/api.log" 2>&1 &
api_pid=$!
wait_ready "reckoning serve" "$api_pid" "$api/readyz" 240
say "reckoning serve (pid $api_pid) ready on $api, model $MODEL_DIR"

# ---------------------------------------------------------------- prometheus with the repo's scrape config
grep -q '"api:8000"' docker/prometheus.yml || die "docker/prometheus.yml no longer targets api:8000"
sed "s/\"api:8000\"/\"127.0.0.1:$api_port\"/" docker/prometheus.yml > "$work/prometheus.yml"
say "scrape config: docker/prometheus.yml with the target api:8000 -> 127.0.0.1:$api_port:"
diff docker/prometheus.yml "$work/prometheus.yml" | sed 's/^/    /' || true
prometheus --version 2>&1 | head -1 | sed 's/^/    /'
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" > "$work/prometheus.log" 2>&1 &
prom_pid=$!
wait_ready prometheus "$prom_pid" "$prom/-/ready" 60
say "prometheus (pid $prom_pid) ready on $prom"

# ---------------------------------------------------------------- traffic
facts='{"facts": ["Bob is big.", "Anne is kind.", "If someone is big then they are strong."]}'
curl -fsS -H 'Content-Type: application/json' -d "$facts" "$api/encode" -o "$work/encode.json" || die "encode failed"
kid="$(json 'd["knowledge_id"]' < "$work/encode.json")"
curl -fsS -H 'Content-Type: application/json' -d "{\"knowledge_id\": \"$kid\", \"question\": \"Bob is strong.\"}" \
  "$api/ask" -o /dev/null || die "ask failed"
say "one encode ($(json 'd["encode_ms"]' < "$work/encode.json") ms) and one ask sent to the api"

# ---------------------------------------------------------------- evidence through the HTTP API
query() { curl -fsS -G "$prom/api/v1/query" --data-urlencode "query=$1"; }
deadline=$((SECONDS + 90))
until [[ "$(query 'reckoning_encode_seconds_count' | json 'len(d["data"]["result"])')" -ge 1 ]]; do
  ((SECONDS < deadline)) || die "reckoning_encode_seconds_count never appeared in Prometheus"
  sleep 2
done
say "GET /api/v1/targets (active targets):"
curl -fsS "$prom/api/v1/targets?state=active" | json \
  '"\n".join("    job=%s url=%s health=%s lastError=%r lastScrape=%s" % (t["labels"]["job"], t["scrapeUrl"], t["health"], t["lastError"], t["lastScrape"]) for t in d["data"]["activeTargets"])'
health="$(curl -fsS "$prom/api/v1/targets?state=active" | json 'd["data"]["activeTargets"][0]["health"]')"
[[ "$health" == up ]] || die "the target is $health"
for q in 'up{job="reckoning-api"}' 'reckoning_encode_seconds_count' 'reckoning_encode_seconds_sum' \
         'reckoning_ask_seconds_count' 'sum by (route, status) (reckoning_requests_total)'; do
  say "GET /api/v1/query?query=$q"
  query "$q" | json '"\n".join("    %s => %s" % (r["metric"], r["value"][1]) for r in d["data"]["result"]) or "    (empty)"'
done
say "raw answer of /api/v1/query?query=reckoning_encode_seconds_count:"
echo "    $(query 'reckoning_encode_seconds_count')"
count="$(query 'reckoning_encode_seconds_count' | json 'float(d["data"]["result"][0]["value"][1])')"
[[ "${count%.*}" -ge 1 ]] || die "reckoning_encode_seconds_count is $count"

# ---------------------------------------------------------------- Grafana
say "Grafana: apt-cache policy grafana:"
policy="$(apt-cache policy grafana 2>&1)"
echo "${policy:-(no output: no package called grafana in the configured Debian archives)}" | sed 's/^/    /'
say "OK: target up, reckoning_encode_seconds_count=$count"
