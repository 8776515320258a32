#!/usr/bin/env bash
# run-tests.sh [SUITE...] - builds detloss and runs the named test suites
# (default: all of them, in this order):
#   format    every tracked C source and header is formatted as .clang-format says
#             (clang-format 14, Debian's clang-format; --dry-run --Werror, nothing rewritten)
#   default   Release build, warnings as errors, the whole ctest suite
#   sanitize  Debug build with AddressSanitizer + UndefinedBehaviorSanitizer and
#             internal assertions, the whole ctest suite
#   tsan      ThreadSanitizer build (clang, libomp, DETLOSS_TSAN=ON: no target_clones),
#             the whole ctest suite with OMP_NUM_THREADS=2, the C tests again with 4. OpenMP is
#             made visible to TSan by LLVM's Archer tool (libarcher.so from libomp-14-dev,
#             through OMP_TOOL_LIBRARIES), and TSan ignores accesses made inside
#             uninstrumented libraries (ignore_noninstrumented_modules=1: libomp,
#             cmocka, cJSON, libc). No suppression file: every access of detloss's own
#             code is checked. (gcc + libgomp is not used: libgomp is not instrumented
#             and its barriers look like races.)
#   nomp      build without OpenMP (serial), the whole ctest suite
#   install   configure for one prefix, cmake --install into another (multiarch
#             libdir); build and run the consumers of tests/install through the CMake
#             package, pkg-config (shared) and detloss-static.pc (no libdetloss.so
#             in ldd); the installed CLI on preset names outside the source tree (and
#             after moving the tree); `pip install` into a venv with
#             --system-site-packages, then a preset loaded and evaluated by name
#   symbols   the static library exports only detloss_/dl_ symbols and has no
#             writable global data (no hidden global state)
#   memcheck  valgrind memcheck on every test binary and on the CLI's main job:
#             any invalid access, uninitialised use or definite/indirect leak fails
#             (with DETLOSS_TEST_SMALL=1: test_determinism's smaller inputs)
#   large     about 2M anchors x 1000 gt: grid matcher == plain matcher for 1 and
#             2 threads, memory O(A) (Release build)
#   fuzz      libFuzzer targets (clang, ASan+UBSan): replay fuzz/regressions/<target>/*,
#             then fuzz each target from its seeds (and fuzz/<target>.dict). Every call's
#             status must be OK or an input-fault class (fuzz/fuzz_oracle.h): a NOMEM,
#             IO or UNSUPPORTED status, a non-finite number in compute's output or an
#             unterminated error message is a finding, like a crash, leak or hang.
#             Default (CI) mode: FUZZ_SECONDS per target (default 30).
#             Long mode: FUZZ_RUNS=N (or FUZZ_LONG=1, meaning N=1000000) runs each
#             target for N executions (-runs=N), capped at FUZZ_MAX_SECONDS per target
#             (default 7200); fewer than N executions within the cap fails the suite.
#             Each target prints its execution count. Findings: _build/fuzz/crash-*.
#   python    libdetloss.so, then the Python binding's pytest suite (python/tests) with
#             Debian's python3-pytest, -numpy, -torch, -torchvision (/usr/bin/python3)
# Build directories: _build/<suite>. Environment: JOBS (default: nproc).
# Ends with "suites: N passed, M failed"; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
mkdir -p _build
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(format default sanitize tsan nomp install symbols memcheck large fuzz python)

extra=()
for s in "${suites[@]}"; do
  [ "$s" = fuzz ] && extra+=(clang libclang-rt-14-dev)
  [ "$s" = tsan ] && extra+=(clang libclang-rt-14-dev libomp-14-dev)
  [ "$s" = memcheck ] && extra+=(valgrind)
  [ "$s" = format ] && extra+=(clang-format)
done
bash scripts/install-deps.sh "${extra[@]}" || exit 1

configure_build() { # dir, cmake args...
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -DDETLOSS_WERROR=ON "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j "$jobs" >"$dir.build.log" 2>&1 \
    || { grep -E "error|warning" -A5 "$dir.build.log" | head -60; tail -20 "$dir.build.log"; return 1; }
}

run_ctest() { # dir
  ctest --test-dir "$1" --output-on-failure -j "$jobs" --timeout 600
}

suite_default()  { configure_build _build/default -DCMAKE_BUILD_TYPE=Release -DDETLOSS_BENCH=ON && run_ctest _build/default; }
suite_sanitize() {
  configure_build _build/sanitize -DCMAKE_BUILD_TYPE=Debug -DDETLOSS_SANITIZE=ON -DDETLOSS_ASSERTS=ON &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_ctest _build/sanitize
}
suite_tsan() {
  local dir=_build/tsan rc=0 nt llvm_lib archer
  CC=clang configure_build "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDETLOSS_TSAN=ON \
    -DDETLOSS_SHARED=OFF || return 1
  llvm_lib=$(dirname "$(readlink -f "$(command -v clang)")")/../lib
  archer=$(readlink -f "$llvm_lib/libarcher.so" 2>/dev/null)
  if [ ! -f "$archer" ]; then echo "tsan: libarcher.so not found next to clang ($llvm_lib)"; return 1; fi
  local tsan_env=(OMP_TOOL_LIBRARIES="$archer"
                  TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=1 exitcode=66 second_deadlock_stack=1")
  # The tool must really be loaded, or OpenMP's synchronization is invisible to TSan.
  local probe
  probe=$(env "${tsan_env[@]}" ARCHER_OPTIONS=verbose=1 OMP_NUM_THREADS=2 "$dir/tests/test_box_iou" 2>&1)
  if ! grep -q "Archer detected OpenMP application with TSan" <<<"$probe"; then
    echo "tsan: Archer did not attach to the OpenMP runtime"; return 1
  fi
  # 4 threads: the C tests only (cli_tests, 4 minutes under TSan, runs the same
  # library code as the C tests, single-job cases, and already ran with 2).
  local skip
  for nt in 2 4; do
    skip=(); [ $nt = 4 ] && skip=(-E '^cli_tests$')
    env "${tsan_env[@]}" OMP_NUM_THREADS=$nt ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 900 "${skip[@]}" \
      >"$dir/ctest-omp$nt.log" 2>&1 || { rc=1; echo "tsan: OMP_NUM_THREADS=$nt FAILED:";
        grep -E "WARNING: ThreadSanitizer|SUMMARY: ThreadSanitizer|tests passed|Failed|\*\*\*" "$dir/ctest-omp$nt.log" | head -20; }
    [ $rc -eq 0 ] && echo "tsan: OMP_NUM_THREADS=$nt: $(grep -Eo '[0-9]+% tests passed.*' "$dir/ctest-omp$nt.log"), no ThreadSanitizer report"
  done
  return $rc
}
suite_nomp()     { configure_build _build/nomp -DCMAKE_BUILD_TYPE=Release -DDETLOSS_OPENMP=OFF && run_ctest _build/nomp; }

suite_install() {
  # Configured for one prefix, installed into another (cmake --install --prefix), in
  # Debian's multiarch layout: everything installed must work from where it lands.
  local prefix=$root/_build/install-prefix moved=$root/_build/install-moved
  local libdir=$root/_build/install-prefix/lib/x86_64-linux-gnu out=$root/_build/install-out
  local venv=$root/_build/install-venv away cli_ok=1
  rm -rf "$prefix" "$moved" "$out" "$venv" _build/consumer
  mkdir -p "$out"
  configure_build _build/install-lib -DCMAKE_BUILD_TYPE=Release -DDETLOSS_TESTS=OFF \
    -DCMAKE_INSTALL_PREFIX=/opt/detloss-configured-prefix \
    -DCMAKE_INSTALL_LIBDIR=lib/x86_64-linux-gnu || return 1
  cmake --install _build/install-lib --prefix "$prefix" >/dev/null || return 1
  # Nothing installed names the configure-time prefix or the source tree.
  if grep -rlF -e /opt/detloss-configured-prefix -e "$root/" "$prefix"; then
    echo "install: the files above name the configure prefix or the source tree"; return 1
  fi
  # 1) CMake package (find_package through CMAKE_PREFIX_PATH): static core, static
  #    JSON layer (+ cJSON), shared library.
  cmake -S tests/install -B _build/consumer -DCMAKE_PREFIX_PATH="$prefix" >/dev/null &&
    cmake --build _build/consumer >/dev/null || return 1
  _build/consumer/consumer && _build/consumer/consumer_json && _build/consumer/consumer_shared || return 1
  # 2) pkg-config, shared: -ldetloss is libdetloss.so, found at run time through the
  #    rpath that detloss.pc adds (no LD_LIBRARY_PATH, no ldconfig).
  local pcp=$libdir/pkgconfig
  [ "$(PKG_CONFIG_PATH=$pcp pkg-config --variable=prefix detloss)" = "$pcp/../../.." ] ||
    { echo "install: detloss.pc prefix is $(PKG_CONFIG_PATH=$pcp pkg-config --variable=prefix detloss)"; return 1; }
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Werror tests/install/consumer_json.c $(PKG_CONFIG_PATH=$pcp pkg-config --cflags detloss) \
    -o "$out/consumer-pc-shared" $(PKG_CONFIG_PATH=$pcp pkg-config --libs detloss) || return 1
  ldd "$out/consumer-pc-shared" | grep -q "libdetloss.so.0 => $libdir" ||
    { echo "install: the shared pkg-config consumer does not find libdetloss.so by its rpath"; return 1; }
  env -u LD_LIBRARY_PATH "$out/consumer-pc-shared" || return 1
  # 2b) the README's static route with the plain package: `pkg-config --static --libs
  #     detloss` gives a program that runs as it is, and with cc -static one that
  #     holds libdetloss.a (and libgomp.a) itself: no dynamic section at all.
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Werror tests/install/consumer.c $(PKG_CONFIG_PATH=$pcp pkg-config --cflags detloss) \
    -o "$out/consumer-pc-static-flags" $(PKG_CONFIG_PATH=$pcp pkg-config --static --libs detloss) &&
    env -u LD_LIBRARY_PATH "$out/consumer-pc-static-flags" || return 1
  # shellcheck disable=SC2046
  cc -static -std=c11 -Wall -Werror tests/install/consumer.c $(PKG_CONFIG_PATH=$pcp pkg-config --cflags detloss) \
    -o "$out/consumer-pc-fully-static" $(PKG_CONFIG_PATH=$pcp pkg-config --static --libs detloss) \
    2>"$out/static-link.log" || { cat "$out/static-link.log"; return 1; }
  if ldd "$out/consumer-pc-fully-static" 2>&1 | grep -q "=>"; then
    echo "install: cc -static with pkg-config --static --libs detloss is not static"; return 1
  fi
  "$out/consumer-pc-fully-static" || return 1
  # 3) pkg-config, static: detloss-static names the archives, so the program needs no
  #    libdetloss.so (none in ldd) and runs without LD_LIBRARY_PATH.
  local c
  for c in consumer consumer_json; do
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Werror "tests/install/$c.c" $(PKG_CONFIG_PATH=$pcp pkg-config --cflags detloss-static) \
      -o "$out/$c-pc-static" $(PKG_CONFIG_PATH=$pcp pkg-config --static --libs detloss-static) || return 1
    if ldd "$out/$c-pc-static" | grep libdetloss; then
      echo "install: the static pkg-config consumer $c needs libdetloss.so"; return 1
    fi
    "$out/$c-pc-static" || return 1
  done
  # 4) the installed CLI, outside the source tree, on preset names (its data directory
  #    is <prefix>/share/detloss, found from the executable's own location).
  away=$(mktemp -d)
  (cd "$away" && env -u DETLOSS_DATA_DIR "$prefix/bin/detloss" eval torchvision_retinanet_r50_fpn \
     >"$out/eval.txt" 2>"$out/eval.err") && grep -qE '^all +3237 ' "$out/eval.txt" &&
    grep -qF "config   $prefix/share/detloss/configs/torchvision_retinanet_r50_fpn.json" "$out/eval.txt" &&
    (cd "$away" && "$prefix/bin/detloss" anchors yolov5_autoanchor --image-size 640 640) |
      grep -qE '^0 +8 +3 +shapes' ||
    { echo "install: installed detloss eval/anchors NAME from $away failed:"; cat "$out/eval.err"; cli_ok=0; }
  # 5) the whole tree moved elsewhere: pkg-config and the CLI follow it.
  if [ $cli_ok = 1 ]; then
    cp -a "$prefix" "$moved"
    [ "$(PKG_CONFIG_PATH=$moved/lib/x86_64-linux-gnu/pkgconfig pkg-config --variable=libdir detloss-static)" = \
      "$moved/lib/x86_64-linux-gnu/pkgconfig/../../../lib/x86_64-linux-gnu" ] &&
      (cd "$away" && "$moved/bin/detloss" eval detectron2_rpn --json) | grep -qF "$moved/share/detloss/configs" ||
      { echo "install: the moved install tree does not find itself"; cli_ok=0; }
  fi
  rm -rf "$away"
  [ $cli_ok = 1 ] || return 1
  # 6) Python, the README's route on Debian 12 (PEP 668: no pip into the system
  #    Python): a venv that sees the system numpy/torch, then pip, offline.
  #    DETLOSS_LIBRARY at build time copies the freshly built libdetloss.so into the package.
  bash scripts/install-deps.sh python3-venv python3-pip python3-setuptools python3-numpy || return 1
  /usr/bin/python3 -m venv --system-site-packages "$venv" || return 1
  DETLOSS_LIBRARY="$root/_build/install-lib/libdetloss.so" PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$venv/bin/pip" install --no-build-isolation ./python >"$out/pip.log" 2>&1 ||
    { tail -20 "$out/pip.log"; return 1; }
  away=$(mktemp -d)
  (cd "$away" && env -u DETLOSS_LIBRARY -u DETLOSS_DATA_DIR "$venv/bin/python" - "$venv" <<'PY'
import os, sys
import detloss
pkg = os.path.dirname(os.path.abspath(detloss.__file__))
assert pkg.startswith(os.path.abspath(sys.argv[1])), pkg              # the installed package
assert os.path.dirname(detloss.library_path) == pkg, detloss.library_path
cfg = detloss.load_config("torchvision_retinanet_r50_fpn")
assert cfg.path == os.path.join(pkg, "data", "configs", "torchvision_retinanet_r50_fpn.json"), cfg.path
assert cfg.dataset_path.startswith(os.path.join(pkg, "data")), cfg.dataset_path
r = cfg.evaluate()
# the bundled COCO subset: 3237 gts once crowd boxes are left out
# (tests/cli/commands.txt: "all 3237" for every preset)
assert r["num_gt"] == 3237, r["num_gt"]
print("install: pip package %s, preset %r: %d gts, recall %.3f" % (
    detloss.__version__, cfg.name, r["num_gt"], r["recall"]))
PY
  ) || { rm -rf "$away"; return 1; }
  rm -rf "$away"
  echo "install: CMake package, pkg-config shared and detloss-static consumers, the installed" \
       "CLI on presets (also moved) and the venv pip install all work"
}

suite_symbols() {
  configure_build _build/default -DCMAKE_BUILD_TYPE=Release -DDETLOSS_BENCH=ON || return 1
  local lib=_build/default/libdetloss.a libj=_build/default/libdetloss_json.a bad
  # Exported (global, defined) symbols must carry the prefix.
  bad=$(nm -g --defined-only "$lib" "$libj" 2>/dev/null | awk 'NF==3 {print $3}' |
        grep -vE '^(detloss_|dl_|dlj_)' || true)
  if [ -n "$bad" ]; then echo "symbols: unprefixed exported symbols:"; echo "$bad"; return 1; fi
  # No writable data at all, global or static: no object in .data or .bss
  # (.data.rel.ro holds const tables of pointers: read-only after relocation).
  bad=$(objdump -t "$lib" "$libj" 2>/dev/null |
        awk '$3 == "O" && $4 ~ /^\.(data|bss)/ && $4 !~ /^\.data\.rel\.ro/ {print $4, $NF}' || true)
  if [ -n "$bad" ]; then echo "symbols: writable data (global state):"; echo "$bad"; return 1; fi
  # The shared object (if any) exports only detloss_ symbols: checked by visibility.
  echo "symbols: $(nm -g --defined-only "$lib" | awk 'NF==3' | grep -c '^') exported, all prefixed; no writable data"
}

suite_large() {
  configure_build _build/default -DCMAKE_BUILD_TYPE=Release -DDETLOSS_BENCH=ON && _build/default/tests/large_inputs
}

suite_memcheck() {
  local dir=_build/memcheck rc=0 n=0
  configure_build "$dir" -DCMAKE_BUILD_TYPE=Debug -DDETLOSS_BENCH=OFF || return 1
  local vg=(valgrind -q --error-exitcode=99 --leak-check=full --show-possibly-lost=no
            --errors-for-leak-kinds=definite,indirect --track-origins=yes)
  for t in "$dir"/tests/test_*; do
    [ -x "$t" ] || continue
    n=$((n + 1))
    # DETLOSS_TEST_SMALL: test_determinism's reduced workload (same code paths and thread
    # counts, fewer elements); the default suite runs the full sizes.
    if ! OMP_NUM_THREADS=2 DETLOSS_TEST_SMALL=1 "${vg[@]}" "$t" >"$t.memcheck.log" 2>&1; then
      echo "memcheck: $(basename "$t") FAILED:"; grep -E "==[0-9]+==" "$t.memcheck.log" | head -20; rc=1
    fi
  done
  local main_job=(eval configs/torchvision_fasterrcnn_fpn_rpn.json --plot "$dir/coverage.svg")
  n=$((n + 1))
  if ! "${vg[@]}" "$dir/detloss" "${main_job[@]}" >"$dir/main-job.memcheck.log" 2>&1; then
    echo "memcheck: detloss ${main_job[*]} FAILED:"; grep -E "==[0-9]+==" "$dir/main-job.memcheck.log" | head -20; rc=1
  fi
  [ $rc -eq 0 ] && echo "memcheck: $n programs clean (no invalid access, uninitialised value or leak)"
  return $rc
}

suite_fuzz() {
  local dir=_build/fuzz secs=${FUZZ_SECONDS:-30} runs=${FUZZ_RUNS:-} cap=${FUZZ_MAX_SECONDS:-7200} t rc=0
  [ -z "$runs" ] && [ "${FUZZ_LONG:-0}" = 1 ] && runs=1000000
  CC=clang configure_build "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDETLOSS_FUZZ=ON \
    -DDETLOSS_OPENMP=OFF -DDETLOSS_TESTS=OFF -DDETLOSS_SHARED=OFF -DDETLOSS_WERROR=OFF || return 1
  # Budget: N executions under a time cap (long mode), or a time budget (CI).
  local budget=(-max_total_time="$secs")
  [ -n "$runs" ] && budget=(-runs="$runs" -max_total_time="$cap")
  for bin in "$dir"/fuzz/fuzz_*; do
    t=$(basename "$bin"); t=${t#fuzz_}
    local reg=fuzz/regressions/$t corpus=$dir/corpus-$t dict=()
    [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
    rm -rf "$corpus"; mkdir -p "$corpus"
    case $t in
      compute) cp tests/cli/cases/*.json examples/compute/*.json "$corpus"/ 2>/dev/null ;;
      config) cp configs/*.json tests/fixtures/anchor_eval/bad_*.json tests/fixtures/anchor_eval/tiny_config.json "$corpus"/ ;;
      dataset) # small seeds only: the first images of the bundled data, and the COCO fixtures
        head -c 4000 data/coco2017_subset.json >"$corpus/coco_head.json"
        cp tests/fixtures/anchor_eval/*.json "$corpus"/ 2>/dev/null
        find "$corpus" -size +64k -delete ;;
    esac
    if [ -d "$reg" ] && ls "$reg"/* >/dev/null 2>&1; then
      if ! "$bin" -runs=0 "$reg"/* </dev/null >"$dir/$t.replay.log" 2>&1; then
        echo "fuzz $t: a regression input fails again:"
        grep -E "oracle violated|ERROR|SUMMARY|runtime error|Running: " "$dir/$t.replay.log" | tail -5
        rc=1; continue
      fi
    fi
    # -malloc_limit_mb: a single allocation above it is a finding (a missing limit);
    # stdin is /dev/null so that no input can make a target wait for a terminal.
    local start=$SECONDS n
    if ! "$bin" "${budget[@]}" "${dict[@]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="$dir/crash-$t-" "$corpus" </dev/null >"$dir/$t.log" 2>&1; then
      echo "fuzz $t: FAILED:"
      grep -E "oracle violated|ERROR|SUMMARY|runtime error|Test unit written" "$dir/$t.log" | head -8
      rc=1; continue
    fi
    n=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$dir/$t.log" | grep -Eo '[0-9]+$')
    if [ -n "$runs" ] && [ "${n:-0}" -lt "$runs" ]; then
      echo "fuzz $t: only ${n:-0} of $runs executions within ${cap}s"; rc=1; continue
    fi
    echo "fuzz $t: $n executions in $((SECONDS - start))s, status classes ok, no crash, leak or sanitizer report"
  done
  return $rc
}

suite_format() {
  local files bad
  mapfile -t files < <(git ls-files '*.c' '*.h' '*.h.in')
  [ ${#files[@]} -gt 0 ] || { echo "format: no C sources found (not a git checkout?)"; return 1; }
  if ! bad=$(clang-format --dry-run --Werror "${files[@]}" 2>&1); then
    echo "$bad" | grep -E "error:" | head -20
    echo "format: the files above differ from .clang-format; run: clang-format -i \$(git ls-files '*.c' '*.h' '*.h.in')"
    return 1
  fi
  echo "format: ${#files[@]} files formatted as .clang-format says"
}

suite_python() {
  bash scripts/install-deps.sh python3-pytest python3-numpy python3-torch python3-torchvision \
    python3-pip python3-setuptools || return 1
  configure_build _build/python -DCMAKE_BUILD_TYPE=Release -DDETLOSS_SHARED=ON \
    -DDETLOSS_TESTS=OFF || return 1
  local rc=0
  DETLOSS_LIBRARY="$root/_build/python/libdetloss.so" \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests || rc=$?
  [ $rc -eq 5 ] && echo "python: pytest collected no tests (a failure)"
  return $rc
}

pass=0; fail=0; failed=()
for s in "${suites[@]}"; do
  echo "=== suite: $s"
  if "suite_$s"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$s"); fi
done
[ $fail -gt 0 ] && echo "failed suites: ${failed[*]}"
echo "suites: $pass passed, $fail failed"
[ $fail -eq 0 ]
