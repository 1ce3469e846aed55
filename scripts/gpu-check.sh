#!/usr/bin/env bash
# The GPU check of issue 16, in two halves (book/src/gpu.md, "Running the GPU check"):
#
#   scripts/gpu-check.sh build OUTDIR   here, with the toolchain: builds everything the GPU run
#                                       needs in release (gpu_bench, the wgpu test binaries, the
#                                       mnist example) into OUTDIR with the MNIST data, the
#                                       Vulkan loader .deb packages and this script.
#   OUTDIR/run.sh [RESULTS_DIR]         there, with no network and no toolchain: installs the
#   (= gpu-check.sh run [RESULTS_DIR])  carried loader if the machine has none, points Vulkan at
#                                       the NVIDIA driver, runs every step under `timeout` within
#                                       one time budget, and writes results.jsonl (one JSON
#                                       object per figure or test) and raw.log (every step's
#                                       output) into RESULTS_DIR (default $OUT, else
#                                       ./gpu-check-results).
#
# Run-mode settings (environment):
#   GPU_CHECK_BUDGET   seconds for all steps together (default 420: one device `run` call,
#                      start-up and transfers included, stays well under its 10 minutes)
#   GPU_CHECK_STEP_LIMIT  seconds each step may take, instead of its own cap (120-150 s)
#   GPU_BENCH_ARGS     extra gpu_bench flags for every bench step (e.g. lavapipe-sized shapes)
#   GPU_CHECK_STEPS    steps to run, space-separated, from: test_cube test_wgpu bench_copy
#                      bench_linear bench_variants bench_conv bench_models mnist_smoke (default:
#                      all, in order)
#   GPU_CHECK_INSTALL  auto (install the carried loader only where none is found), always, never
#   GPU_CHECK_DEB_ROOT where the .debs unpack (default /, as the device README does; any other
#                      folder is put on LD_LIBRARY_PATH instead)
set -uo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
SELF_DIR="$(dirname "$SELF")"

# What the device README says to carry for Vulkan (and EGL, which wgpu may probe).
DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
# What travels with one device `run` call, the working tree included (device README).
CARRY_LIMIT_MIB=64
# The MNIST smoke run: one epoch on this many training and test images.
SMOKE_TRAIN=512
SMOKE_TEST=256

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"
    exit 2
}

# --------------------------------------------------------------------------------------------
# build (here)
# --------------------------------------------------------------------------------------------

build() {
    set -e
    local out="$1"
    local tool
    for tool in cargo jq python3 strip xz apt-get; do
        command -v "$tool" >/dev/null || { echo "error: build needs $tool" >&2; exit 1; }
    done
    local root
    root="$(cd "$SELF_DIR/.." && pwd)"
    cd "$root"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-ternary/target}"
    export CARGO_TERM_COLOR=never
    mkdir -p "$out/bin" "$out/debs" "$out/data/mnist"
    out="$(cd "$out" && pwd)"
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064 # expanded now: $tmp is local
    trap "rm -rf '$tmp'" EXIT

    # Always --workspace: the root package alone resolves Burn with other features and
    # rebuilds ~70 crates (README); the whole workspace shares the test build.
    echo "== cargo build --release --workspace --example gpu_bench --example mnist"
    cargo build --release --workspace --example gpu_bench --example mnist \
        --message-format=json-render-diagnostics >"$tmp/build.json"
    echo "== cargo test --release --workspace --no-run"
    cargo test --release --workspace --no-run \
        --message-format=json-render-diagnostics >"$tmp/test.json"

    # The executables, from cargo's own artifact messages (test binaries carry a hash).
    pick() { # json-file jq-filter-on-target -> executable path
        jq -r --arg root "$root" "select(.reason == \"compiler-artifact\" and .executable != null)
            | select($2) | .executable" "$1" | tail -n 1
    }
    local -A exe
    # shellcheck disable=SC2016 # $root is jq's variable (--arg), not the shell's
    {
        exe[gpu_bench]="$(pick "$tmp/build.json" '.target.kind == ["example"] and .target.name == "gpu_bench"')"
        exe[mnist]="$(pick "$tmp/build.json" '.target.kind == ["example"] and .target.name == "mnist"')"
        exe[test_wgpu]="$(pick "$tmp/test.json" '.target.kind == ["test"] and .target.src_path == ($root + "/tests/wgpu.rs")')"
        exe[test_cube]="$(pick "$tmp/test.json" '.target.kind == ["test"] and .target.src_path == ($root + "/kernels/tests/cube.rs")')"
    }
    # ~575 MB each as built (Burn, wgpu and the release profile's line tables); stripped of
    # debug info and symbols ~75 MB, and xz makes that ~11 MB, so four fit in one carry.
    # Panic messages keep their file:line (compiled in); only backtraces lose names.
    local name path
    rm -f "$out/bin/"*
    for name in gpu_bench mnist test_wgpu test_cube; do
        path="${exe[$name]}"
        if [[ -z "$path" || ! -x "$path" ]]; then
            echo "error: no executable for $name in cargo's output" >&2
            exit 1
        fi
        strip -o "$tmp/$name" "$path"
        xz -6 -T2 -c "$tmp/$name" >"$out/bin/$name.xz"
        echo "   $name: $path ($(du -h "$path" | cut -f1)), stripped $(du -h "$tmp/$name" | cut -f1) -> bin/$name.xz ($(du -h "$out/bin/$name.xz" | cut -f1))"
        rm "$tmp/$name"
    done

    # The smoke run's data: the first SMOKE_TRAIN / SMOKE_TEST images of the four MNIST files
    # (exactly what the smoke run reads), as IDX files with their counts rewritten: the whole
    # set would take 11 of the 64 MiB.
    local mnist_src="${MNIST_DIR:-$root/../shared/data/mnist}"
    [[ -d "$mnist_src" ]] || mnist_src="${BURN_TERNARY_DATA:-$HOME/.cache/burn-ternary}/mnist"
    rm -f "$out/data/mnist/"*
    python3 - "$mnist_src" "$out/data/mnist" "$SMOKE_TRAIN" "$SMOKE_TEST" <<'PY'
import gzip, os, struct, sys
src, dst, n_train, n_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for prefix, n in (("train", n_train), ("t10k", n_test)):
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"{prefix}-{kind}"
        path = os.path.join(src, name)
        if os.path.exists(path + ".gz"):
            data = gzip.open(path + ".gz").read()
        elif os.path.exists(path):
            data = open(path, "rb").read()
        else:
            sys.exit(f"error: {name}(.gz) not in {src} (set MNIST_DIR)")
        dims = data[3]
        shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
        item = 1
        for d in shape[1:]:
            item *= d
        n = min(n, shape[0])
        head = data[:4] + struct.pack(f">{dims}I", n, *shape[1:])
        body = data[4 + 4 * dims : 4 + 4 * dims + n * item]
        with gzip.open(os.path.join(dst, name + ".gz"), "wb") as f:
            f.write(head + body)
PY

    # The Vulkan loader and friends, amd64 whatever this machine is (the device is x86-64).
    # As root, apt cannot hand the download to its sandbox user in a folder it does not own.
    local apt_q=(-q -oAPT::Sandbox::User=root)
    rm -f "$out/debs/"*.deb
    if [[ "$(dpkg --print-architecture)" == amd64 ]] &&
        (cd "$out/debs" && apt-get "${apt_q[@]}" download "${DEBS[@]}" >/dev/null); then
        :
    else
        local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
        mkdir -p /tmp/amd64/partial
        apt-get "${o[@]}" "${apt_q[@]}" update >/dev/null
        (cd "$out/debs" && apt-get "${o[@]}" "${apt_q[@]}" download "${DEBS[@]}" >/dev/null)
    fi

    # xz, to unpack the binaries where the machine has none (it needs only liblzma5, which
    # every Debian or Ubuntu has: dpkg links it). Unpacked into a private folder, not /.
    rm -rf "$out/tools" && mkdir -p "$out/tools"
    (cd "$out/tools" && apt-get "${apt_q[@]}" download xz-utils >/dev/null) ||
        echo "warning: no xz-utils .deb; the run falls back to python3's lzma" >&2

    cp "$SELF" "$out/gpu-check.sh"
    chmod +x "$out/gpu-check.sh"
    cat >"$out/run.sh" <<'EOF'
#!/usr/bin/env bash
# Runs the GPU check from this bundle; see gpu-check.sh for the settings.
exec bash "$(dirname "${BASH_SOURCE[0]}")/gpu-check.sh" run "$@"
EOF
    chmod +x "$out/run.sh"
    {
        echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
        echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD || echo ' + uncommitted changes')"
        echo "rustc: $(rustc --version)"
        (cd "$out" && find . -type f ! -name MANIFEST -printf '%s\t%p\n' | sort -k2)
    } >"$out/MANIFEST"

    local bytes
    bytes="$(du -sb "$out" | cut -f1)"
    echo "== $out: $((bytes / 1024 / 1024)) MiB ($bytes bytes)"
    du -sh "$out"/* | sed 's/^/   /'
    if ((bytes > (CARRY_LIMIT_MIB - 4) * 1024 * 1024)); then
        echo "error: over the device tool's ${CARRY_LIMIT_MIB} MiB carry limit (with the working tree)" >&2
        exit 1
    fi
    if [[ "$out" == "$root"/* ]]; then
        local rel="${out#"$root"/}"
        echo "device call: run(command=\"bash $rel/run.sh\", carry=[\"$rel\"], timeout_s=540)"
    else
        echo "to carry it, build into a folder of the repo that git ignores (.gpu-check)"
    fi
}

# --------------------------------------------------------------------------------------------
# run (there)
# --------------------------------------------------------------------------------------------

json_str() { # a JSON string literal of $1
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/}
    printf '"%s"' "$s"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

emit() { echo "$1" >>"$RESULTS"; }

log_header() { printf '\n===== %s (%s) =====\n' "$1" "$(date -u +%H:%M:%S)" >>"$RAW"; }

# Seconds left of the budget (integer).
left() { awk -v s="$START" -v b="$BUDGET" -v n="$(now)" 'BEGIN { printf "%d", b - (n - s) }'; }

# step NAME CAP_SECONDS CMD...: runs CMD under timeout (CAP, or what is left of the budget),
# output into raw.log and $WORK/NAME.log; a step line into results.jsonl. Never fails.
step() {
    local name="$1" cap="$2"
    shift 2
    if [[ -n "${GPU_CHECK_STEPS:-}" && " $GPU_CHECK_STEPS " != *" $name "* ]]; then
        return 0
    fi
    local budget_left limit
    cap="${GPU_CHECK_STEP_LIMIT:-$cap}"
    budget_left="$(left)"
    limit=$((cap < budget_left ? cap : budget_left))
    if ((budget_left < 10)); then
        emit "{\"kind\":\"step\",\"step\":\"$name\",\"skipped\":\"time budget spent\"}"
        echo "-- $name: skipped (time budget spent)"
        return 0
    fi
    echo "-- $name (limit ${limit}s): $*"
    log_header "$name: $* (limit ${limit}s)"
    local t0 rc
    t0="$(now)"
    timeout -k 10 "$limit" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    cat "$WORK/$name.log" >>"$RAW"
    local secs timed_out=false
    secs="$(elapsed "$t0")"
    ((rc == 124 || rc == 137)) && timed_out=true
    emit "{\"kind\":\"step\",\"step\":\"$name\",\"rc\":$rc,\"seconds\":$secs,\"limit_s\":$limit,\"timed_out\":$timed_out}"
    echo "   rc $rc, ${secs}s$([[ $timed_out == true ]] && echo ', TIMED OUT')"
    return 0
}

# JSON lines a step printed (gpu_bench --json), tagged with the step.
collect_json() {
    local name="$1"
    [[ -f "$WORK/$name.log" ]] || return 0
    grep '^{' "$WORK/$name.log" | sed "s/^{/{\"step\":\"$name\",/" >>"$RESULTS" || true
}

# libtest's "test NAME ... ok|FAILED|ignored" lines and its summary, as JSON lines.
collect_tests() {
    local name="$1" suite="$2"
    [[ -f "$WORK/$name.log" ]] || return 0
    sed -n 's/^test \(.*\) \.\.\. \(ok\|FAILED\|ignored\)$/\1\t\2/p' "$WORK/$name.log" |
        while IFS=$'\t' read -r test result; do
            emit "{\"kind\":\"test\",\"suite\":\"$suite\",\"test\":$(json_str "$test"),\"result\":\"$result\"}"
        done
    sed -n 's/^test result: \([A-Za-z]*\)\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*finished in \([0-9.]*\)s.*/\1 \2 \3 \4 \5/p' \
        "$WORK/$name.log" | while read -r verdict passed failed ignored secs; do
        emit "{\"kind\":\"test_summary\",\"suite\":\"$suite\",\"result\":\"$verdict\",\"passed\":$passed,\"failed\":$failed,\"ignored\":$ignored,\"seconds\":$secs}"
    done
}

# Installs the carried loader where the machine has none (or always, if asked).
install_loader() {
    local mode="${GPU_CHECK_INSTALL:-auto}" root="${GPU_CHECK_DEB_ROOT:-/}"
    if [[ "$mode" == never ]]; then
        return 0
    fi
    if [[ "$mode" == auto ]] && ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
        echo "Vulkan loader: already installed ($(ldconfig -p | grep -m1 'libvulkan\.so\.1 ' | sed 's/.*=> //'))" >>"$RAW"
        emit '{"kind":"loader","installed":false,"reason":"libvulkan.so.1 already present"}'
        return 0
    fi
    local debs=("$BUNDLE"/debs/*.deb) f
    if [[ ! -e "${debs[0]}" ]]; then
        emit '{"kind":"loader","installed":false,"reason":"no .deb in the bundle"}'
        return 0
    fi
    mkdir -p "$root"
    for f in "${debs[@]}"; do
        # dpkg -x, not -i: no dependency resolution, no maintainer scripts, no network
        # (what the device README does).
        dpkg -x "$f" "$root" >>"$RAW" 2>&1 || echo "dpkg -x $f failed" >>"$RAW"
    done
    if [[ "$root" == / ]]; then
        ldconfig
    else
        export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    emit "{\"kind\":\"loader\",\"installed\":true,\"root\":$(json_str "$root"),\"debs\":${#debs[@]}}"
}

# Points the Vulkan loader (and EGL) at the NVIDIA driver where it is mounted outside the
# standard paths (the device README); elsewhere the installed ICDs (lavapipe here) are used.
vulkan_env() {
    local nv=/usr/local/nvidia/share
    if [[ -f "$nv/vulkan/icd.d/nvidia_icd.json" ]]; then
        export VK_DRIVER_FILES="$nv/vulkan/icd.d/nvidia_icd.json"
        export VK_ICD_FILENAMES="$VK_DRIVER_FILES" # loaders before 1.3.207
    fi
    if [[ -f "$nv/glvnd/egl_vendor.d/10_nvidia.json" ]]; then
        export __EGL_VENDOR_LIBRARY_FILENAMES="$nv/glvnd/egl_vendor.d/10_nvidia.json"
    fi
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK/xdg}"
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
    export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
    local icds="" f
    for f in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json "$nv"/vulkan/icd.d/*.json; do
        [[ -f "$f" ]] && icds+="$f "
    done
    emit "{\"kind\":\"env\",\"host\":$(json_str "$(uname -n)"),\"kernel\":$(json_str "$(uname -r)"),\"cpus\":$(nproc),\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"vk_driver_files\":$(json_str "${VK_DRIVER_FILES:-}"),\"icds\":$(json_str "$icds"),\"budget_s\":$BUDGET}"
    {
        echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-} XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"
        echo "ICD files: $icds"
        [[ -f "$BUNDLE/MANIFEST" ]] && cat "$BUNDLE/MANIFEST"
    } >>"$RAW"
}

# The GPU as the driver tools see it (nvidia-smi there; vulkaninfo where installed).
gpu_info() {
    if command -v nvidia-smi >/dev/null; then
        local q
        q="$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>>"$RAW" | head -n 1)"
        nvidia-smi >>"$RAW" 2>&1
        IFS=',' read -r name driver mem sm memclk <<<"$q"
        emit "{\"kind\":\"nvidia_smi\",\"name\":$(json_str "${name# }"),\"driver\":$(json_str "${driver# }"),\"memory\":$(json_str "${mem# }"),\"max_sm_clock\":$(json_str "${sm# }"),\"max_mem_clock\":$(json_str "${memclk# }")}"
    fi
    if command -v vulkaninfo >/dev/null; then
        vulkaninfo --summary >"$WORK/vulkaninfo.log" 2>&1
        cat "$WORK/vulkaninfo.log" >>"$RAW"
        local dn di
        dn="$(sed -n 's/^\s*deviceName\s*=\s*//p' "$WORK/vulkaninfo.log" | head -n 1)"
        di="$(sed -n 's/^\s*driverInfo\s*=\s*//p' "$WORK/vulkaninfo.log" | head -n 1)"
        emit "{\"kind\":\"vulkaninfo\",\"device_name\":$(json_str "$dn"),\"driver_info\":$(json_str "$di")}"
    fi
}

# The carried binaries, unpacked into $WORK/bin: with xz where the machine has it, else the
# carried xz-utils (into a private folder), else python3's lzma.
unpack_bins() {
    local xz=xz deb
    if ! command -v xz >/dev/null; then
        xz=""
        for deb in "$BUNDLE"/tools/xz-utils_*.deb; do
            [[ -f "$deb" ]] && dpkg -x "$deb" "$WORK/xz" 2>>"$RAW" && xz="$WORK/xz/usr/bin/xz"
        done
    fi
    mkdir -p "$WORK/bin"
    local f name
    for f in "$BUNDLE"/bin/*.xz; do
        name="$(basename "$f" .xz)"
        if [[ -n "$xz" ]] && "$xz" -dc "$f" >"$WORK/bin/$name" 2>>"$RAW"; then
            :
        else
            python3 -c 'import lzma, shutil, sys
shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "$WORK/bin/$name" 2>>"$RAW"
        fi
        chmod +x "$WORK/bin/$name"
    done
    echo "binaries unpacked with ${xz:-python3 lzma}:" "$WORK"/bin/* >>"$RAW"
}

run() {
    BUNDLE="${GPU_CHECK_BUNDLE:-$SELF_DIR}"
    if [[ ! -d "$BUNDLE/bin" ]]; then
        echo "error: no bin/ next to $SELF: run a bundle made by 'gpu-check.sh build OUTDIR'" >&2
        exit 2
    fi
    BUNDLE="$(cd "$BUNDLE" && pwd)"
    local results_dir="${1:-${OUT:-$PWD/gpu-check-results}}"
    mkdir -p "$results_dir"
    results_dir="$(cd "$results_dir" && pwd)"
    RESULTS="$results_dir/results.jsonl"
    RAW="$results_dir/raw.log"
    : >"$RESULTS"
    : >"$RAW"
    WORK="$(mktemp -d)"
    BUDGET="${GPU_CHECK_BUDGET:-420}"
    START="$(now)"
    local bin="$WORK/bin"
    local -a bench_args
    read -r -a bench_args <<<"${GPU_BENCH_ARGS:-}"

    echo "GPU check: bundle $BUNDLE, results $results_dir, budget ${BUDGET}s"
    unpack_bins
    install_loader
    vulkan_env
    gpu_info

    # Correctness first: figures from kernels that are wrong on this GPU would mean nothing.
    step test_cube 120 "$bin/test_cube"
    collect_tests test_cube kernels/tests/cube.rs
    step test_wgpu 120 "$bin/test_wgpu"
    collect_tests test_wgpu tests/wgpu.rs
    # One process per section, so a hang or crash in one keeps the others' figures.
    local section
    for section in copy linear variants conv models; do
        step "bench_$section" 150 "$bin/gpu_bench" --json --sections "$section" "${bench_args[@]}"
        collect_json "bench_$section"
    done
    step mnist_smoke 150 "$bin/mnist" --device wgpu --epochs 1 --limit-train "$SMOKE_TRAIN" --limit-test "$SMOKE_TEST" \
        --data-dir "$BUNDLE/data/mnist" --offline --workers 4 --artifact-dir "$WORK/mnist-run"
    if [[ -f "$WORK/mnist-run/summary.json" ]]; then
        # summary.json is one pretty-printed object; one line of it (python3 where there is
        # one, else joined: none of its values holds a newline).
        local summary="$WORK/mnist-run/summary.json"
        emit "$(python3 -c 'import json, sys
print(json.dumps({"kind": "mnist_smoke", **json.load(open(sys.argv[1]))}, separators=(",", ":")))' "$summary" 2>/dev/null ||
            echo "{\"kind\":\"mnist_smoke\",$(tr -d '\n' <"$summary" | sed 's/^ *{ *//')")"
    fi

    local total
    total="$(elapsed "$START")"
    emit "{\"kind\":\"done\",\"seconds\":$total,\"budget_s\":$BUDGET}"
    echo "done in ${total}s: $(grep -c . "$RESULTS") JSON lines in $RESULTS, logs in $RAW"
    rm -rf "$WORK"
}

case "${1:-}" in
build)
    [[ $# -eq 2 ]] || usage
    build "$2"
    ;;
run)
    shift
    [[ $# -le 1 ]] || usage
    run "$@"
    ;;
*) usage ;;
esac
