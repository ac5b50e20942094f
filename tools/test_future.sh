#!/usr/bin/env bash
# `make test-future`: the unit and integration tests again with the clock moved forward by Debian's
# libfaketime, once per offset (OFFSETS, e.g. "+45d +400d"), so nothing in the suite expires.
# Tests that libfaketime breaks for reasons unrelated to dates are listed, with the reason, in
# tests/faketime-exclude.txt; nothing else is left out. Prints pytest's summary line per offset.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OFFSETS=${OFFSETS:-+45d +400d}
command -v faketime >/dev/null || { echo "test-future: faketime is missing (apt-get install -y faketime)" >&2; exit 1; }

deselect=()
while IFS= read -r line; do
  id=${line%%#*}
  id=${id//[[:space:]]/}
  [ -n "$id" ] && deselect+=(--deselect "$id")
done < tests/faketime-exclude.txt

# The offsets run side by side (each pytest waits on I/O much of the time): about the time of one.
declare -A logs pids
first=1
for offset in $OFFSETS; do
  only_once=()
  # `make run` listens on fixed ports: its test runs at the first offset only.
  [ $first = 1 ] || only_once=(--deselect tests/integration/test_make_run.py)
  first=0
  logs[$offset]=$(mktemp "${TMPDIR:-/tmp}/test-future.XXXXXX")
  echo "== unit and integration tests with the clock at $offset ($(faketime -f "$offset" date -u +%Y-%m-%dT%H:%MZ))"
  # libfaketime moves the monotonic clock by the same fixed offset, so waits keep their length.
  # (FAKETIME_DONT_FAKE_MONOTONIC=1 would make Python 3.11's time.sleep fail with EINVAL:
  # libfaketime 0.9.10, wolfcw/libfaketime#426.)
  faketime -f "$offset" "$PY" -m pytest tests/unit tests/integration -q -p no:cacheprovider "${deselect[@]}" "${only_once[@]}" \
      >"${logs[$offset]}" 2>&1 &
  pids[$offset]=$!
done

status=0
summary=()
for offset in $OFFSETS; do
  wait "${pids[$offset]}"
  rc=$?
  log=${logs[$offset]}
  line=$(grep -E '^=*.*(passed|failed|error).* in [0-9.]+s' "$log" | tail -1)
  [ -n "$line" ] || line=$(tail -1 "$log")
  if [ $rc -ne 0 ]; then
    echo "-- failures at $offset:"
    grep -E '^(FAILED|ERROR) ' "$log" | head -50
    # What went wrong, not only where, capped; the whole log is kept.
    kept="${TMPDIR:-/tmp}/test-future-${offset//[^0-9a-z]/}.log"
    cp "$log" "$kept"
    echo "-- details at $offset (whole log: $kept):"
    if grep -qE '^=+ (FAILURES|ERRORS) =+$' "$log"; then
      sed -n '/^=* \(FAILURES\|ERRORS\) =*$/,/^=* short test summary/p' "$log" | head -400
    elif grep -q '^Fatal Python error' "$log"; then
      # The interpreter died (e.g. a segmentation fault): pytest's faulthandler dumped every
      # thread's stack, the crashing thread's first.
      sed -n '/^Fatal Python error/,$p' "$log" | head -300
    else
      tail -100 "$log"
    fi
    status=1
  fi
  summary+=("$offset: $line")
  rm -f "$log"
done
echo "== test-future (pytest's summary per clock offset)"
printf '%s\n' "${summary[@]}"
exit $status
