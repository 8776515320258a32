#!/usr/bin/env bash
# run_output_tests.sh DETLOSS JSONCMP DIR - how the detloss command writes its
# outputs (see README.md beside this file): long text complete, write failures
# reported with exit 1, output files through symbolic links, with their mode
# kept, FIFOs and devices written in place, several outputs replaced together
# or not at all, and --help documenting every option and the exit codes.
# Ends with "N passed, M failed".
#
# DETLOSS_OLD_BINARY=1 leaves out the checks that write to /dev/...: a binary
# that renames a temporary file over its output would replace /dev/full or
# /dev/stdout of the whole machine when run as root. Use it only to show that
# an old binary fails the other checks.
set -u
bin=$1; jsoncmp=$2; dir=$3
src=$dir/../../src/cli
fix=$dir/../fixtures/anchor_eval
cfg=$fix/tiny_config.json
many=$dir/files/many_sizes.json
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
safe_dev=1; [ "${DETLOSS_OLD_BINARY:-0}" = 1 ] && safe_dev=0
echo '{}' >"$tmp/any.json"

# expect NAME STATUS STDERR-REGEX (- = none) -- run "$@" with stdout to $tmp/out
expect() {
  local name=$1 want=$2 err=$3; shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"; local st=$?
  if [ "$st" != "$want" ]; then bad "$name: exit $st, expected $want ($(head -c 300 "$tmp/err"))"; return 1; fi
  if [ "$err" != - ] && ! grep -qE -- "$err" "$tmp/err"; then
    bad "$name: stderr lacks /$err/ (got: $(head -c 300 "$tmp/err"))"; return 1
  fi
  return 0
}
# no stray temporary files left in a directory
clean_dir() { ! ls -A "$1" | grep -q '^\.detloss-tmp-'; }
mode_of() { stat -c %a "$1"; }

# Long text is complete (no fixed line buffers). A level with 1000 sizes
# overflowed a 200-byte stack buffer in `detloss anchors` (ASan).
if expect many_sizes_table 0 - -- "$bin" anchors "$many" --image-size 64 64; then
  line=$(grep '^0 ' "$tmp/out")
  n=$(grep -o '123457' <<<"$line" | wc -l)   # %g of 123456.7
  # 64 / 16 = 4 cells a side; 1000 sizes x 3 ratios = 3000 per cell; 4 x 4 x 3000 = 48000
  if [ "$n" -ne 1000 ]; then bad "many_sizes_table: $n sizes printed, expected 1000"
  elif ! grep -qE ' / 0\.5 1 2  4 x 4 +48000$' <<<"$line"; then bad "many_sizes_table: ratios or count cut: ${line: -80}"
  else ok; fi
fi
if expect many_sizes_json 0 - -- "$bin" anchors "$many" --image-size 64 64 -o "$tmp/many.json"; then
  echo '{"image_size":[64,64],"count":48000,"levels":[{"stride":16,"feature_map":[4,4],"count":48000}]}' >"$tmp/many_want.json"
  if msg=$("$jsoncmp" "$tmp/many_want.json" "$tmp/many.json"); then ok; else bad "many_sizes_json: $msg"; fi
fi
# A config path longer than eval's old 1024-byte report line: the first line
# of the report names it in full.
long=$tmp; for i in 1 2 3 4 5 6; do long=$long/$(printf 'd%.0s' $(seq 200)); done
mkdir -p "$long"
sed "s#\"tiny_dataset.json\"#\"$(cd "$fix" && pwd)/tiny_dataset.json\"#" "$cfg" >"$long/config.json"
if expect long_config_path 0 - -- "$bin" eval "$long/config.json"; then
  if [ "$(head -1 "$tmp/out")" = "config   $long/config.json: tiny hand-worked config" ]; then ok
  else bad "long_config_path: first line cut to $(head -1 "$tmp/out" | wc -c) bytes"; fi
fi

# A file name cut short to fit a 4096-byte buffer was looked up anyway
# (src/json/config_resolve.c dlj_resolve()): "./././…/tiny_dataset.jsonX", 4096 bytes
# and more, was cut right after ".json" and loaded tiny_dataset.json.
mkdir -p "$tmp/trunc"
cp "$fix/tiny_dataset.json" "$tmp/trunc/"
base=tiny_dataset.json
pad=$((4095 - ${#tmp} - 7 - ${#base}))   # "$tmp/trunc" + "/" is ${#tmp} + 7 bytes
name=$( (( pad % 2 )) && printf /; for _ in $(seq $((pad / 2))); do printf ./; done; printf tiny_dataset.jsonX)
sed "s#\"tiny_dataset.json\"#\"$name\"#" "$cfg" >"$tmp/trunc/config.json"
expect truncated_name 2 "config.json: dataset: data set '(\./)+" -- "$bin" eval "$tmp/trunc/config.json" && ok

# The plot's title is cut to 90 characters, not bytes: a cut never splits a
# UTF-8 sequence ("a" + 100 x "é": 90 bytes ended inside the 45th "é").
ename="a$(for _ in $(seq 100); do printf 'é'; done)"
sed "s#\"tiny hand-worked config\"#\"$ename\"#; s#\"tiny_dataset.json\"#\"$(cd "$fix" && pwd)/tiny_dataset.json\"#" "$cfg" >"$tmp/utf8.json"
if expect utf8_title 0 - -- "$bin" eval "$tmp/utf8.json" --plot "$tmp/utf8.svg"; then
  want="a$(for _ in $(seq 89); do printf 'é'; done)..."
  if ! iconv -f UTF-8 -t UTF-8 "$tmp/utf8.svg" >/dev/null 2>&1; then bad "utf8_title: the SVG is not valid UTF-8"
  elif ! grep -qF ">$want</text>" "$tmp/utf8.svg"; then bad "utf8_title: title not cut to 90 characters"
  else ok; fi
fi

# A failed write of standard output is exit 1 with one line naming it.
full() { # name, args...
  local name=$1; shift
  "$bin" "$@" >/dev/full 2>"$tmp/err"; local st=$?
  if [ $st -ne 1 ]; then bad "$name >/dev/full: exit $st, expected 1"
  elif [ "$(cat "$tmp/err")" != "detloss: stdout: write error: No space left on device" ]; then
    bad "$name >/dev/full: stderr '$(cat "$tmp/err")'"
  else ok; fi
}
full compute compute "$dir/cases/iou_hand.json"
full anchors anchors "$cfg"
full anchors_many anchors "$many" --image-size 64 64
full eval eval "$cfg"
full eval_json eval "$cfg" --json
full bench_json bench --small --only focal_16m --repeats 1 --warmup 0 --json
full bench_table bench --small --only focal_16m --repeats 1 --warmup 0
full help --help
full compute_help compute --help
full eval_help_config eval --help-config
full bench_list bench --list
# -o and --plot to a device that fails: named, exit 1, nothing on stdout
if [ $safe_dev = 1 ]; then
  expect anchors_o_full 1 '^detloss: /dev/full: write error: No space left on device$' -- \
    "$bin" anchors "$cfg" --image-size 64 64 -o /dev/full && { [ -s "$tmp/out" ] && bad "anchors_o_full: stdout not empty" || ok; }
  expect eval_plot_full 1 '^detloss: /dev/full: write error: No space left on device$' -- \
    "$bin" eval "$cfg" --plot /dev/full && { [ -s "$tmp/out" ] && bad "eval_plot_full: stdout not empty" || ok; }
  expect eval_o_full 1 '^detloss: /dev/full: write error' -- "$bin" eval "$cfg" -o /dev/full && ok
  [ -c /dev/full ] && ok || bad "/dev/full is no longer a character device"
fi

# A symbolic link is written through: its target gets the output,
# the link stays a link. Relative links resolve from the link's directory.
mkdir -p "$tmp/a/real" "$tmp/a/links"
echo old >"$tmp/a/real/target.json"
ln -s ../real/target.json "$tmp/a/links/link.json"
if expect symlink 0 - -- "$bin" anchors "$cfg" --image-size 64 64 -o "$tmp/a/links/link.json"; then
  if [ ! -L "$tmp/a/links/link.json" ]; then bad "symlink: the link was replaced by a file"
  elif [ "$(readlink "$tmp/a/links/link.json")" != ../real/target.json ]; then bad "symlink: link changed"
  elif ! grep -q '"count":16' "$tmp/a/real/target.json"; then bad "symlink: target not written: $(head -c 100 "$tmp/a/real/target.json")"
  elif ! clean_dir "$tmp/a/real" || ! clean_dir "$tmp/a/links"; then bad "symlink: temporary file left"
  else ok; fi
fi
# a chain of two links, the last one dangling: the final target is created
ln -s "$tmp/a/real/new.json" "$tmp/a/links/dangling.json"
ln -s dangling.json "$tmp/a/links/chain.json"
if expect symlink_chain 0 - -- "$bin" anchors "$cfg" --image-size 64 64 -o "$tmp/a/links/chain.json"; then
  if [ -L "$tmp/a/links/chain.json" ] && [ -L "$tmp/a/links/dangling.json" ] && grep -q '"count":16' "$tmp/a/real/new.json"
  then ok; else bad "symlink_chain: links replaced or target not created"; fi
fi
# a loop of links is an error naming the file, exit 1
ln -s loop2 "$tmp/a/links/loop1"; ln -s loop1 "$tmp/a/links/loop2"
expect symlink_loop 1 'loop1: cannot write: Too many levels of symbolic links' -- \
  "$bin" anchors "$cfg" --image-size 64 64 -o "$tmp/a/links/loop1" && ok

# An existing file keeps its mode; a new one gets 0666 & ~umask.
echo old >"$tmp/secret.json"; chmod 600 "$tmp/secret.json"
if expect mode_kept 0 - -- "$bin" anchors "$cfg" --image-size 64 64 -o "$tmp/secret.json"; then
  m=$(mode_of "$tmp/secret.json")
  if [ "$m" = 600 ] && grep -q '"count":16' "$tmp/secret.json"; then ok; else bad "mode_kept: mode $m, expected 600"; fi
fi
echo old >"$tmp/shared.json"; chmod 664 "$tmp/shared.json"
expect mode_kept_664 0 - -- "$bin" eval "$cfg" -o "$tmp/shared.json" &&
  { [ "$(mode_of "$tmp/shared.json")" = 664 ] && ok || bad "mode_kept_664: mode $(mode_of "$tmp/shared.json")"; }
for mask in 022 077 002; do
  rm -f "$tmp/new_$mask.json"
  (umask $mask && "$bin" anchors "$cfg" --image-size 64 64 -o "$tmp/new_$mask.json" >/dev/null 2>&1)
  want=$(printf '%o' $((0666 & ~0$mask)))
  m=$(mode_of "$tmp/new_$mask.json" 2>/dev/null)
  [ "$m" = "$want" ] && ok || bad "new file under umask $mask: mode $m, expected $want"
done
# a file we may not write stays as it is (root may write anything: skipped)
if [ "$(id -u)" != 0 ]; then
  echo old >"$tmp/ro.json"; chmod 444 "$tmp/ro.json"
  expect read_only 1 'ro.json: cannot write: Permission denied' -- \
    "$bin" anchors "$cfg" --image-size 64 64 -o "$tmp/ro.json" &&
    { [ "$(cat "$tmp/ro.json")" = old ] && ok || bad "read_only: file replaced"; }
fi

# A FIFO is written in place, not replaced by a file.
mkfifo "$tmp/fifo"
timeout 20 cat "$tmp/fifo" >"$tmp/fifo_got" &
reader=$!
if expect fifo 0 - -- timeout 20 "$bin" anchors "$cfg" --image-size 64 64 -o "$tmp/fifo"; then
  wait $reader
  if [ ! -p "$tmp/fifo" ]; then bad "fifo: the FIFO was replaced"
  elif ! grep -q '"count":16' "$tmp/fifo_got"; then bad "fifo: the reader got: $(head -c 100 "$tmp/fifo_got")"
  else ok; fi
else
  kill $reader 2>/dev/null; wait $reader 2>/dev/null
  # an old binary renamed a file over the FIFO: put it back for the checks below
  rm -f "$tmp/fifo"
fi
if [ $safe_dev = 1 ]; then
  # /dev/stdout: the JSON arrives on standard output, after which the table
  if expect dev_stdout 0 - -- "$bin" anchors "$cfg" --image-size 64 64 -o /dev/stdout; then
    if head -1 "$tmp/out" | grep -q '^{.*"count":16' && grep -q '^config ' "$tmp/out"; then ok
    else bad "dev_stdout: stdout $(head -c 200 "$tmp/out")"; fi
  fi
  expect dev_null 0 - -- "$bin" eval "$cfg" --plot /dev/null -o /dev/null &&
    { [ -c /dev/null ] && ok || bad "dev_null: /dev/null is no longer a device"; }
  [ -L /dev/stdout ] && ok || bad "/dev/stdout is no longer a link"
fi
# a directory is not an output
mkdir -p "$tmp/adir"
expect directory 1 'adir: cannot write: Is a directory' -- \
  "$bin" anchors "$cfg" --image-size 64 64 -o "$tmp/adir" && ok

# Several outputs are replaced together or not at all.
mkdir -p "$tmp/d"
echo old_plot >"$tmp/d/p.svg"; echo old_report >"$tmp/d/r.txt"
expect plot_then_bad_o 1 '^detloss: /nonexistent/x: cannot write: No such file or directory$' -- \
  "$bin" eval "$cfg" --plot "$tmp/d/p.svg" -o /nonexistent/x &&
  { [ "$(cat "$tmp/d/p.svg")" = old_plot ] && clean_dir "$tmp/d" && ok || bad "plot_then_bad_o: p.svg replaced or temp left"; }
expect bad_plot_then_o 1 'cannot write: No such file or directory' -- \
  "$bin" eval "$cfg" --plot /nonexistent/p.svg -o "$tmp/d/r.txt" &&
  { [ "$(cat "$tmp/d/r.txt")" = old_report ] && clean_dir "$tmp/d" && ok || bad "bad_plot_then_o: r.txt replaced"; }
# the report to a directory fails after the plot's temporary file was written
mkdir -p "$tmp/d/isdir"
expect plot_then_dir 1 'isdir: cannot write: Is a directory' -- \
  "$bin" eval "$cfg" --plot "$tmp/d/p.svg" -o "$tmp/d/isdir" &&
  { [ "$(cat "$tmp/d/p.svg")" = old_plot ] && clean_dir "$tmp/d" && ok || bad "plot_then_dir: p.svg replaced"; }
# both good: both replaced, the plot's place said on stderr, stdout empty
if expect both_written 0 "^detloss: wrote plot $tmp/d/p.svg$" -- \
  "$bin" eval "$cfg" --json --plot "$tmp/d/p.svg" -o "$tmp/d/r.txt"; then
  if [ -s "$tmp/out" ]; then bad "both_written: stdout not empty"
  elif ! head -c 5 "$tmp/d/p.svg" | grep -q '^<svg'; then bad "both_written: p.svg not an SVG"
  elif ! msg=$("$jsoncmp" "$tmp/any.json" "$tmp/d/r.txt"); then bad "both_written: r.txt: $msg"
  else ok; fi
fi
# --json with --plot: stdout is the JSON alone, the plot message on stderr
if expect json_stdout_pure 0 '^detloss: wrote plot ' -- "$bin" eval "$cfg" --json --plot "$tmp/d/q.SVG"; then
  if msg=$("$jsoncmp" "$tmp/any.json" "$tmp/out") && [ "$(wc -l <"$tmp/out")" = 1 ] && [ -s "$tmp/d/q.SVG" ]
  then ok; else bad "json_stdout_pure: $msg $(head -c 100 "$tmp/out")"; fi
fi
# the same file twice is a usage error, before any work
expect same_file 2 "^detloss: eval: --plot and -o name the same file" -- \
  "$bin" eval "$cfg" --plot "$tmp/d/p.svg" -o "$tmp/d/p.svg" && ok
ln -sf p.svg "$tmp/d/alias.svg"
expect same_file_link 2 "name the same file" -- "$bin" eval "$cfg" --plot "$tmp/d/alias.svg" -o "$tmp/d/p.svg" && ok

# --plot writes SVG only: another extension is a usage error before any work.
for name in x.png plot.PDF a.svg.png; do
  expect "plot_ext_$name" 2 "^detloss: eval: --plot $tmp/d/$name: only SVG is written" -- \
    "$bin" eval "$cfg" --plot "$tmp/d/$name" &&
    { [ -e "$tmp/d/$name" ] && bad "plot_ext_$name: file created" || ok; }
done
for name in upper.SVG mixed.Svg noext .hidden; do
  expect "plot_ok_$name" 0 "^detloss: wrote plot $tmp/d/$name$" -- "$bin" eval "$cfg" --plot "$tmp/d/$name" &&
    { head -c 5 "$tmp/d/$name" | grep -q '^<svg' && ok || bad "plot_ok_$name: no SVG written"; }
done

# fit: -o and --plot written together; the anchor file it writes is a valid
# anchor set that a config can name (evaluated by detloss eval).
fitdir="$src/../../tests/fixtures/fit"
expect fit_outputs 0 "^detloss: wrote plot $tmp/d/fit.svg$" -- \
  "$bin" fit "$fitdir/shapes_config.json" --method kmeans -n 2 -o "$tmp/d/fit_anchors.json" --plot "$tmp/d/fit.svg" &&
  { head -c 5 "$tmp/d/fit.svg" | grep -q '^<svg' && grep -q '"source":"detloss fit --method kmeans --seed 0' "$tmp/d/fit_anchors.json" && ok || bad "fit_outputs: files"; }
printf '{"head": "none", "anchors": "%s", "dataset": "%s", "eval": {"metric": "wh_ratio"}}\n' \
  "$tmp/d/fit_anchors.json" "$fitdir/two_clusters.json" >"$tmp/d/fit_cfg.json"
expect fit_reload 0 - -- "$bin" eval "$tmp/d/fit_cfg.json" &&
  { grep -qE '^all +6 +1.000 +1.000' "$tmp/out" && ok || bad "fit_reload: fitted anchors do not evaluate to recall 1"; }

# --help of every subcommand names every option its parser accepts (the
# "--name" literals of its source file) and the exit codes.
for cmd in compute anchors eval bench fit; do
  "$bin" "$cmd" --help >"$tmp/help" 2>&1
  for opt in $(grep -oE '"--[a-z][a-z-]*' "$src/cmd_$cmd.c" | tr -d '"' | sort -u); do
    grep -qE -- "(^|[ [,])$opt([ =,]|$)" "$tmp/help" && ok || bad "$cmd --help does not list $opt"
  done
  grep -q '^exit status: 0 success; 1 I/O or system failure' "$tmp/help" && ok || bad "$cmd --help: no exit codes"
  grep -qE '2 (bad$|bad input|usage)|^ +input or usage|2 usage' "$tmp/help" && ok || bad "$cmd --help: exit 2 not described"
done
"$bin" --help >"$tmp/help" 2>&1
grep -q '^exit status: 0 success; 1 I/O or system failure' "$tmp/help" && ok || bad "--help: no exit codes"

echo "cli output: $pass passed, $fail failed"
[ $fail -eq 0 ]
