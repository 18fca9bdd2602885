#!/usr/bin/env bash
# A local S3 API server for the S3 integration tests: moto_server from PyPI on 127.0.0.1.
#
#   eval "$(scripts/s3-test-server.sh start)"   # install if needed, start, create a bucket,
#                                               # print the variables the tests read
#   cargo test s3                               # the S3 tests (they skip without the variables)
#   scripts/s3-test-server.sh stop              # stop the server started from this directory
#
# The state (pid, log) lives in $S3_TEST_SERVER_DIR (default: target/s3-test-server). Nothing in
# the tests depends on moto itself: any S3-compatible server with conditional puts works with
# STRATA_TEST_S3_ENDPOINT and STRATA_TEST_S3_BUCKET set by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

state_dir=${S3_TEST_SERVER_DIR:-target/s3-test-server}
bucket=${STRATA_TEST_S3_BUCKET:-strata-test}
# Conditional PutObject (If-None-Match: *) came to moto in September 2024 (getmoto/moto#8109);
# 5.1 is a floor that surely has it, and `start` checks the behaviour anyway.
moto_requirement='moto[server]>=5.1'

start() {
  mkdir -p "$state_dir"
  if ! python3 -c '
import sys, boto3, moto.server
from importlib.metadata import version
sys.exit(tuple(int(p) for p in version("moto").split(".")[:2]) < (5, 1))' 2>/dev/null \
    || ! command -v moto_server >/dev/null; then
    echo "installing $moto_requirement" >&2
    python3 -m pip install --quiet "$moto_requirement" >&2
  fi
  if [[ -f "$state_dir/pid" ]] && kill -0 "$(cat "$state_dir/pid")" 2>/dev/null; then
    echo "moto_server already running (pid $(cat "$state_dir/pid")); stop it first" >&2
    exit 1
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  endpoint="http://127.0.0.1:$port"
  moto_server -H 127.0.0.1 -p "$port" >"$state_dir/log" 2>&1 &
  echo $! >"$state_dir/pid"
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "$endpoint/moto-api/"; then
      break
    fi
    if ! kill -0 "$(cat "$state_dir/pid")" 2>/dev/null; then
      echo "moto_server exited; its log:" >&2
      cat "$state_dir/log" >&2
      exit 1
    fi
    sleep 0.1
  done
  if ! curl -sf -o /dev/null "$endpoint/moto-api/"; then
    echo "moto_server did not answer on $endpoint within 10 s" >&2
    stop
    exit 1
  fi
  # moto accepts any credentials; the tests sign with these.
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test python3 - "$endpoint" "$bucket" <<'EOF'
import sys
import boto3
from botocore.exceptions import ClientError
endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
s3.create_bucket(Bucket=bucket)
# The manifest commit relies on create-if-absent: refuse a server that ignores it.
s3.put_object(Bucket=bucket, Key="strata-probe", Body=b"1", IfNoneMatch="*")
try:
    s3.put_object(Bucket=bucket, Key="strata-probe", Body=b"2", IfNoneMatch="*")
    sys.exit("the S3 server ignores If-None-Match: * (conditional put); upgrade moto")
except ClientError as e:
    if e.response["ResponseMetadata"]["HTTPStatusCode"] != 412:
        raise
s3.delete_object(Bucket=bucket, Key="strata-probe")
EOF
  echo "moto_server on $endpoint (pid $(cat "$state_dir/pid")), bucket $bucket" >&2
  cat <<EOF
export STRATA_TEST_S3_ENDPOINT=$endpoint
export STRATA_TEST_S3_BUCKET=$bucket
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
EOF
}

stop() {
  if [[ -f "$state_dir/pid" ]]; then
    pid=$(cat "$state_dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -f "$state_dir/pid"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
