#!/usr/bin/env bash
# Build llama.cpp's llama-server once, from the llama.cpp source that the pinned llama-cpp-python vendors,
# into a cache outside the repository (~15 minutes on 2 cores). The engine benchmark runs it side by side.
set -euo pipefail
version=$(python3 -c 'import re,sys; print(re.search(r"llama-cpp-python==([0-9.]+)", open("pyproject.toml").read())[1])')
cache=${STREAMSERVE_BENCH_CACHE:-$HOME/.cache/streamserve-bench}
mkdir -p "$cache" && cd "$cache"
[ -d "llama_cpp_python-$version" ] || {
  pip download --no-deps --no-binary :all: "llama-cpp-python==$version" -d .
  tar xzf "llama_cpp_python-$version.tar.gz"
}
cmake -S "llama_cpp_python-$version/vendor/llama.cpp" -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON
cmake --build build --target llama-server -j"$(nproc)"
ln -sf "$cache/build/bin/llama-server" "$cache/llama-server"
echo "$cache/llama-server"
