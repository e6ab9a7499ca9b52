#!/usr/bin/env bash
# Starts the services the tests talk to (Label Studio, moto) on loopback, runs a command with
# their addresses in the environment, and stops them whatever the command's outcome.
#   scripts/services.sh run -- COMMAND [ARGS...]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
state="${SERVICES_STATE_DIR:-$top/.services}"
venv="$top/.venv"
ls_venv="$top/.venv-labelstudio"
pids=()

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() {  # URL SECONDS NAME LOG
  local url=$1 seconds=$2 name=$3 log=$4
  for _ in $(seq "$seconds"); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then echo "services: $name ready at $url"; return 0; fi
    sleep 1
  done
  echo "services: $name did not answer $url within ${seconds}s; last lines of $log:" >&2
  tail -n 40 "$log" >&2
  return 1
}

start_labelstudio() {
  local port; port=$(free_port)
  local data="$state/labelstudio"
  rm -rf "$data"; mkdir -p "$data"
  export LABEL_STUDIO_URL="http://127.0.0.1:$port"
  export LABEL_STUDIO_TEST_USERNAME="otel-bridge-test@example.com"
  export LABEL_STUDIO_TEST_PASSWORD="otel-bridge-test-password"
  # A legacy token (the server refuses those unless enabled before its first start);
  # tests obtain a personal access token through the API as well.
  export LABEL_STUDIO_LEGACY_TOKEN="0123456789abcdef0123456789abcdef01234567"
  # Tests that stop and restart a Label Studio of their own start it from a copy of this
  # server's database, which skips the slow first-start migrations.
  export LABEL_STUDIO_DATA_DIR="$data"
  (
    cd "$data"
    LABEL_STUDIO_BASE_DATA_DIR="$data" \
    LABEL_STUDIO_USERNAME="$LABEL_STUDIO_TEST_USERNAME" \
    LABEL_STUDIO_PASSWORD="$LABEL_STUDIO_TEST_PASSWORD" \
    LABEL_STUDIO_USER_TOKEN="$LABEL_STUDIO_LEGACY_TOKEN" \
    LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true \
    LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true \
    LATEST_VERSION_CHECK=false \
    exec "$ls_venv/bin/label-studio" start --no-browser --host 127.0.0.1 --port "$port" \
      --data-dir "$data" >"$state/labelstudio.log" 2>&1
  ) &
  pids+=($!)
  echo "$!" >"$state/labelstudio.pid"
}

start_moto() {
  local port; port=$(free_port)
  export MOTO_ENDPOINT_URL="http://127.0.0.1:$port"
  "$venv/bin/python" -m moto.server -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
  pids+=($!)
  echo "$!" >"$state/moto.pid"
}

stop_all() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    pkill -TERM -P "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

write_env() {
  {
    echo "LABEL_STUDIO_URL=$LABEL_STUDIO_URL"
    echo "LABEL_STUDIO_TEST_USERNAME=$LABEL_STUDIO_TEST_USERNAME"
    echo "LABEL_STUDIO_TEST_PASSWORD=$LABEL_STUDIO_TEST_PASSWORD"
    echo "LABEL_STUDIO_LEGACY_TOKEN=$LABEL_STUDIO_LEGACY_TOKEN"
    echo "LABEL_STUDIO_DATA_DIR=$LABEL_STUDIO_DATA_DIR"
    echo "MOTO_ENDPOINT_URL=$MOTO_ENDPOINT_URL"
  } >"$state/env"
}

case "${1:-}" in
  run)
    shift; [ "${1:-}" = "--" ] && shift
    mkdir -p "$state"
    trap stop_all EXIT INT TERM
    start_labelstudio
    start_moto
    wait_for "$MOTO_ENDPOINT_URL/moto-api/" 60 moto "$state/moto.log"
    wait_for "$LABEL_STUDIO_URL/health" 600 "Label Studio" "$state/labelstudio.log"
    write_env
    set +e
    "$@"
    status=$?
    set -e
    exit "$status"
    ;;
  *)
    echo "usage: $0 run -- COMMAND [ARGS...]" >&2
    exit 2
    ;;
esac
