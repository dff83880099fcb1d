#!/usr/bin/env bash
# Installs the Debian packages this project needs, and only those that are missing.
# Everything the build, tests, demo and benchmarks use comes from here; nothing is downloaded at
# run time. Runs as root, or through sudo when available.
set -euo pipefail

packages=(
  cmake g++ make pkg-config git
  libopenblas-openmp-dev   # cblas_sgemm, threaded with OpenMP like our own loops
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev libomp-14-dev  # make fuzz-smoke: libFuzzer + ASan/UBSan runtimes, clang's OpenMP
  zlib1g-dev               # gzipped IDX files
  libstb-dev               # stb_image: JPEG and PNG decoding for image folders
  nlohmann-json3-dev       # safetensors headers, run configs, results JSON
  libfmt-dev               # messages
  libcli11-dev             # the inq command-line tool
  libopenmpi-dev openmpi-bin  # data-parallel training under mpirun (docs/DISTRIBUTED.md)
  dataset-fashion-mnist    # /usr/share/datasets/fashion-mnist
  python3 python3-matplotlib  # figures of inq reproduce (tools/plot_results.py)
  python3-torch python3-torchvision python3-pil  # parity tests (tests/parity, tests/image_parity), make bench
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[deps] all ${#packages[@]} Debian packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "[deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
