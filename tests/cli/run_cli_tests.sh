#!/usr/bin/env bash
# run_cli_tests.sh DETLOSS JSONCMP DIR - the CLI tests (see README.md beside this file).
# Every case under DIR/cases runs through `detloss compute`; successful cases
# also run with --threads 1 and --threads 3 and must print identical bytes.
# Then the command-line checks in DIR/commands.txt. Ends with "N passed, M failed".
set -u
bin=$1; jsoncmp=$2; dir=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

for case in "$dir"/cases/*.json; do
  [ -e "$case" ] || continue
  case "$case" in *.out.json) continue ;; esac
  name=${case%.json}; base=$(basename "$name")
  "$bin" compute "$case" >"$tmp/out" 2>"$tmp/err"; status=$?
  if [ -f "$name.out.json" ]; then
    tol=""; [ -f "$name.tol" ] && tol=$(cat "$name.tol")
    if [ $status -ne 0 ]; then bad "$base: exit $status: $(head -c 300 "$tmp/err")"; continue; fi
    if [ -s "$tmp/err" ]; then bad "$base: unexpected stderr: $(head -c 300 "$tmp/err")"; continue; fi
    # shellcheck disable=SC2086
    if ! msg=$("$jsoncmp" "$name.out.json" "$tmp/out" $tol); then bad "$base: $msg"; continue; fi
    "$bin" compute --threads 1 "$case" >"$tmp/out1" 2>/dev/null
    "$bin" compute --threads 3 "$case" >"$tmp/out3" 2>/dev/null
    if ! cmp -s "$tmp/out1" "$tmp/out3" || ! cmp -s "$tmp/out1" "$tmp/out"; then
      bad "$base: output differs between thread counts"; continue
    fi
    ok
  elif [ -f "$name.err" ]; then
    if [ $status -ne 2 ]; then bad "$base: exit $status, expected 2"; continue; fi
    if [ -s "$tmp/out" ]; then bad "$base: stdout not empty on error"; continue; fi
    if [ "$(wc -l <"$tmp/err")" -ne 1 ]; then bad "$base: expected one stderr line, got: $(cat "$tmp/err")"; continue; fi
    if [ "$(cat "$tmp/err")" != "$(cat "$name.err")" ]; then
      bad "$base: stderr '$(cat "$tmp/err")', expected '$(cat "$name.err")'"; continue
    fi
    ok
  else
    bad "$base: neither $base.out.json nor $base.err exists"
  fi
done

# Command-line checks: lines "STATUS<TAB>STDOUT-GREP<TAB>STDERR-GREP<TAB>ARGS..." ('-' = no check).
# ARGS are words; @CASES@ expands to DIR/cases, @STDIN:file@ feeds a file on stdin,
# leading @ENV:NAME=VALUE@ words set environment variables for that one run.
while IFS=$'\t' read -r want_status want_out want_err args; do
  case "$want_status" in ''|'#'*) continue ;; esac
  args=${args//@CASES@/$dir/cases}
  envs=()
  while [[ $args == @ENV:* ]]; do
    kv=${args#@ENV:}; kv=${kv%%@*}; envs+=("$kv"); args=${args#@ENV:"$kv"@}; args=${args# }
  done
  stdin=/dev/null
  if [[ $args == *@STDIN:* ]]; then
    f=${args##*@STDIN:}; f=${f%%@*}; stdin="$dir/cases/$f"; args=${args/@STDIN:$f@/}
  fi
  # shellcheck disable=SC2086
  env ${envs[@]+"${envs[@]}"} "$bin" $args <"$stdin" >"$tmp/out" 2>"$tmp/err"; status=$?
  label="${envs[*]+${envs[*]} }detloss $args"
  if [ "$status" != "$want_status" ]; then bad "$label: exit $status, expected $want_status ($(head -c 200 "$tmp/err"))"; continue; fi
  if [ "$want_out" != "-" ] && ! grep -qE -- "$want_out" "$tmp/out"; then bad "$label: stdout lacks /$want_out/"; continue; fi
  if [ "$want_err" != "-" ] && ! grep -qE -- "$want_err" "$tmp/err"; then bad "$label: stderr lacks /$want_err/ (got: $(head -c 200 "$tmp/err"))"; continue; fi
  if [ "$want_status" != 0 ] && [ -s "$tmp/out" ]; then bad "$label: stdout not empty on failure"; continue; fi
  ok
done <"$dir/commands.txt"

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
