#!/usr/bin/env bash
# presets.sh DETLOSS - `detloss eval NAME` / `detloss anchors NAME` take a preset
# name from any directory (the data directory search of src/cli/presets.c):
# $DETLOSS_DATA_DIR first, then the installed data directory next to the
# executable (<bin>/../share/detloss; in a build tree <build>/share/detloss),
# then ./configs. Every command runs in a fresh directory outside the source
# tree. Ends with "presets: N passed, M failed".
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# check WANT_STATUS STDOUT-ERE STDERR-ERE ARGS... ('-' = no check); env from the caller.
check() {
  local want=$1 out_re=$2 err_re=$3; shift 3
  (cd "$tmp/cwd" && "$bin" "$@") >"$tmp/out" 2>"$tmp/err"; local st=$?
  local label="detloss $*"
  if [ "$st" != "$want" ]; then bad "$label: exit $st, expected $want ($(head -c 300 "$tmp/err"))"; return; fi
  if [ "$out_re" != - ] && ! grep -qE -- "$out_re" "$tmp/out"; then bad "$label: stdout lacks /$out_re/"; return; fi
  if [ "$err_re" != - ] && ! grep -qE -- "$err_re" "$tmp/err"; then bad "$label: stderr lacks /$err_re/ (got: $(head -c 300 "$tmp/err"))"; return; fi
  if [ "$want" != 0 ]; then
    if [ -s "$tmp/out" ]; then bad "$label: stdout not empty on failure"; return; fi
    if [ "$(wc -l <"$tmp/err")" -ne 1 ]; then bad "$label: expected one stderr line, got: $(cat "$tmp/err")"; return; fi
  fi
  pass=$((pass + 1))
}

mkdir -p "$tmp/cwd"
unset DETLOSS_DATA_DIR

# A preset name, run from a directory that holds no configs/: found next to the
# executable. The table's "all" row of the bundled COCO subset has 3237 gts
# (tests/cli/commands.txt checks the numbers with the path form).
check 0 '^all +3237 ' - eval torchvision_retinanet_r50_fpn
check 0 '"num_gt":3237' - eval torchvision_fasterrcnn_fpn_rpn --json --threads 1
# The torchvision RetinaNet level 2 (stride 32) base anchors: size 64, ratio 1 -> [-64,..].
check 0 'level 2: .*\[-64, -64, 64, 64\]' - anchors torchvision_retinanet_r50_fpn
check 0 '^0 +8 +3 +shapes' - anchors yolov5_autoanchor --image-size 640 640

# An unknown preset: exit 2, one line naming it, a suggestion and the presets.
check 2 - "CONFIG: unknown preset 'detectron2_rpm' \(did you mean 'detectron2_rpn'\?\)" anchors detectron2_rpm
check 2 - "unknown preset 'torchvision_retinanet' \(did you mean 'torchvision_retinanet_r50_fpn'\?\).*presets: .*detectron2_retinanet, .*yolov5_autoanchor" eval torchvision_retinanet
check 2 - "unknown preset 'zzz'; presets: atss_r50_fpn, detectron2_retinanet, " eval zzz
# A path (a slash or .json) is a file, relative to the current directory.
check 2 - 'cannot open' eval torchvision_retinanet_r50_fpn.json
check 2 - 'cannot open' anchors ./torchvision_retinanet_r50_fpn

# $DETLOSS_DATA_DIR comes first: its configs/ shadows the installed preset, and
# the anchor file and data set a config names are found through the same
# search (configs/../anchors, <dir>/anchors, <dir>/data, then the next dirs).
mkdir -p "$tmp/dd/configs" "$tmp/dd/data"
cat >"$tmp/dd/configs/torchvision_retinanet_r50_fpn.json" <<'EOF'
{"name": "shadowing preset", "head": "retinanet", "anchors": "torchvision_retinanet.json",
 "dataset": "tiny.json"}
EOF
# One 64 x 64 image with one 32 x 32 box.
cat >"$tmp/dd/data/tiny.json" <<'EOF'
{"images": [{"width": 64, "height": 64, "boxes": [[0, 0, 32, 32]]}]}
EOF
cat >"$tmp/dd/configs/own.json" <<'EOF'
{"name": "own preset", "anchors": "torchvision_fpn.json", "dataset": "../data/tiny.json"}
EOF
export DETLOSS_DATA_DIR=$tmp/dd
check 0 'shadowing preset' - anchors torchvision_retinanet_r50_fpn
check 0 '"config_name":"shadowing preset".*"num_gt":1,' - eval torchvision_retinanet_r50_fpn --json
check 0 '"config_name":"own preset".*"num_gt":1,' - eval own --json
check 0 '^all +3237 ' - eval detectron2_rpn   # not in $DETLOSS_DATA_DIR: the next directory
check 2 - "unknown preset 'owm' \(did you mean 'own'\?\)" eval owm
# A data directory that does not exist is skipped.
DETLOSS_DATA_DIR=$tmp/nonexistent check 0 '^all +3237 ' - eval torchvision_retinanet_r50_fpn
unset DETLOSS_DATA_DIR

# Last: ./configs of the current directory.
mkdir -p "$tmp/cwd/configs"
cp "$tmp/dd/configs/own.json" "$tmp/cwd/configs/cwd_only.json"
cp -r "$tmp/dd/data" "$tmp/cwd/data"
check 0 '"config_name":"own preset".*"num_gt":1,' - eval cwd_only --json

echo "presets: $pass passed, $fail failed"
[ $fail -eq 0 ]
