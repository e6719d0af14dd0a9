#!/usr/bin/env bash
# Sets everything up, starts worker, sink and API, and plays the built-in demo stream:
# a learner's course goes from 0% to 100%, watched through the API.
# The services keep running until Ctrl-C (DEMO_EXIT=1 stops them after the demo).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/stack.sh up
scripts/bootstrap.sh

# The demo's API answers without tokens: local development only (docs/api.md).
export API_AUTH="${API_AUTH:-off}"

mkdir -p var/log
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

.venv/bin/progress topics
# The worker's local tables belong to one Kafka cluster: after the broker's data was purged
# (scripts/stack.sh down --purge kafka), tables from before would claim changelog offsets the
# new cluster never had, and Faust refuses to start. One data dir per cluster id.
cluster=$(.venv/bin/python - <<'PY'
import asyncio

from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings


async def cluster_id() -> str:
    admin = AIOKafkaAdminClient(**kafka_client_options(Settings()))
    await admin.start()
    try:
        return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


print(asyncio.run(cluster_id()))
PY
)
export WORKER_DATA_DIR="${WORKER_DATA_DIR:-var/worker/$cluster}"
for process in worker sink api; do
  .venv/bin/progress "$process" >"var/log/$process.log" 2>&1 &
  pids+=("$!")
  echo "demo: started $process (pid $!, log var/log/$process.log)"
done

api="http://${API_HOST:-127.0.0.1}:${API_PORT:-8080}"
for _ in $(seq 1 120); do
  if curl -fsS "$api/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
curl -fsS "$api/readyz" >/dev/null || { echo "demo: the API did not become ready; see var/log/" >&2; exit 1; }

status=0
.venv/bin/progress demo || status=$?

if [ "${DEMO_EXIT:-0}" = "1" ]; then
  exit "$status"
fi
echo "demo: worker, sink and API keep running; Ctrl-C stops them"
wait
