#!/usr/bin/env bash
# Build the reference llama.cpp (CPU only, Release) that srl is checked and
# benchmarked against.
#
# Source: the PyPI sdist of llama-cpp-python, which vendors a complete
# llama.cpp tree (vendor/llama.cpp) including tools.  Pinned below.
#
# Installs into $LLAMACPP_DIR (default /opt/llama.cpp):
#   bin/      llama-bench llama-quantize llama-tokenize llama-server llama-cli
#             llama-simple llama-completion
#   lib/      libllama.so libggml*.so (+ libllama-common if shared)
#   include/  llama.h ggml*.h gguf.h
#   BUILD_INFO.json   versions, commit, cmake flags, compiler
# The sdist and build tree live in $LLAMACPP_WORK (default $LLAMACPP_DIR/_work).
#
# Idempotent: if BUILD_INFO.json matches the pinned version and all binaries
# exist, it only prints the build info.  FORCE=1 rebuilds.
# Needs: network access to PyPI (pip), cmake >= 3.14, a C/C++ compiler.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="0.3.36"
# sha256 of llama_cpp_python-0.3.36.tar.gz as downloaded from PyPI
SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
# llama-cpp-python's CHANGELOG for 0.3.36: "update llama.cpp to ggml-org/llama.cpp@0c1e57098"
LLAMA_CPP_COMMIT="0c1e57098"

LLAMACPP_DIR="${LLAMACPP_DIR:-/opt/llama.cpp}"
LLAMACPP_WORK="${LLAMACPP_WORK:-$LLAMACPP_DIR/_work}"
JOBS="${JOBS:-2}"
PY="${PYTHON:-python3}"

TARGETS=(llama llama-bench llama-quantize llama-tokenize llama-server llama-cli llama-simple llama-completion)
BINS=(llama-bench llama-quantize llama-tokenize llama-server llama-cli llama-simple llama-completion)

log() { echo "[build.sh] $*" >&2; }

already_built() {
    [[ -f "$LLAMACPP_DIR/BUILD_INFO.json" ]] || return 1
    grep -q "\"llama_cpp_python\": \"$LLAMA_CPP_PYTHON_VERSION\"" "$LLAMACPP_DIR/BUILD_INFO.json" || return 1
    for b in "${BINS[@]}"; do [[ -x "$LLAMACPP_DIR/bin/$b" ]] || return 1; done
    [[ -f "$LLAMACPP_DIR/lib/libllama.so" ]] || return 1
    return 0
}

if [[ "${FORCE:-0}" != "1" ]] && already_built; then
    log "already built in $LLAMACPP_DIR (FORCE=1 to rebuild)"
    cat "$LLAMACPP_DIR/BUILD_INFO.json"
    exit 0
fi

command -v cmake >/dev/null || { log "cmake not found: apt-get install -y cmake  (or pip install cmake)"; exit 1; }

mkdir -p "$LLAMACPP_WORK" "$LLAMACPP_DIR"
SDIST="$LLAMACPP_WORK/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
SRC="$LLAMACPP_WORK/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION"
BUILD="$LLAMACPP_WORK/build"

# 1. fetch the sdist.  --no-build-isolation + scikit-build-core avoids pip
#    building the sdist's build deps (cmake, ninja) from source just to read
#    metadata.
if [[ ! -f "$SDIST" ]]; then
    log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist from PyPI"
    "$PY" -m pip install -q scikit-build-core >/dev/null
    "$PY" -m pip download --no-deps --no-binary llama-cpp-python --no-build-isolation \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$LLAMACPP_WORK"
fi
got_sha=$(sha256sum "$SDIST" | cut -d' ' -f1)
if [[ "$got_sha" != "$SDIST_SHA256" ]]; then
    log "sdist sha256 mismatch: got $got_sha, expected $SDIST_SHA256"; exit 1
fi
if [[ ! -d "$SRC/vendor/llama.cpp" ]]; then
    log "extracting $SDIST"
    tar -xzf "$SDIST" -C "$LLAMACPP_WORK"
fi
LSRC="$SRC/vendor/llama.cpp"
LLAMA_VERSION=$(sed -n 's/^set(LLAMA_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$LSRC/CMakeLists.txt" | paste -sd.)

# 2. configure + build (only the targets we need; -j$JOBS)
CMAKE_FLAGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=ON
    -DGGML_NATIVE=ON
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_HIP=OFF -DGGML_SYCL=OFF -DGGML_RPC=OFF
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_EXAMPLES=ON
    -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_COMMIT="$LLAMA_CPP_COMMIT"
    -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
    '-DCMAKE_INSTALL_RPATH=$ORIGIN/../lib'
)
log "configuring llama.cpp $LLAMA_VERSION (commit $LLAMA_CPP_COMMIT) in $BUILD"
cmake -S "$LSRC" -B "$BUILD" "${CMAKE_FLAGS[@]}" >"$LLAMACPP_WORK/configure.log" 2>&1 \
    || { tail -50 "$LLAMACPP_WORK/configure.log"; exit 1; }
log "building targets: ${TARGETS[*]} (-j$JOBS; log: $LLAMACPP_WORK/build.log)"
cmake --build "$BUILD" --config Release -j "$JOBS" --target "${TARGETS[@]}" >"$LLAMACPP_WORK/build.log" 2>&1 \
    || { tail -50 "$LLAMACPP_WORK/build.log"; exit 1; }

# 3. install by copying (cmake --install would require every target built)
mkdir -p "$LLAMACPP_DIR/bin" "$LLAMACPP_DIR/lib" "$LLAMACPP_DIR/include"
for b in "${BINS[@]}"; do install -m 755 "$BUILD/bin/$b" "$LLAMACPP_DIR/bin/$b"; done
find "$BUILD" -name 'lib*.so*' \( -type f -o -type l \) -print0 | while IFS= read -r -d '' f; do
    cp -P "$f" "$LLAMACPP_DIR/lib/"
done
cp "$LSRC/include/"*.h "$LLAMACPP_DIR/include/"
cp "$LSRC/ggml/include/"*.h "$LLAMACPP_DIR/include/"

CXX_VERSION=$( (c++ --version 2>/dev/null || true) | head -1)
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
{
    echo "{"
    echo "  \"llama_cpp_python\": \"$LLAMA_CPP_PYTHON_VERSION\","
    echo "  \"sdist_sha256\": \"$SDIST_SHA256\","
    echo "  \"llama_cpp_version\": \"$LLAMA_VERSION\","
    echo "  \"llama_cpp_commit\": \"$LLAMA_CPP_COMMIT\","
    echo "  \"llama_cpp\": \"llama.cpp $LLAMA_VERSION @ ggml-org/llama.cpp@$LLAMA_CPP_COMMIT (vendored in llama-cpp-python $LLAMA_CPP_PYTHON_VERSION)\","
    echo "  \"cmake_flags\": \"${CMAKE_FLAGS[*]}\","
    echo "  \"compiler\": \"$CXX_VERSION\","
    echo "  \"cpu\": \"$CPU_MODEL\","
    echo "  \"built_at\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
    echo "}"
} >"$LLAMACPP_DIR/BUILD_INFO.json"
"$LLAMACPP_DIR/bin/llama-cli" --version 2>&1 | head -3 || true
log "done"
cat "$LLAMACPP_DIR/BUILD_INFO.json"
