#!/usr/bin/env bash
# Build the Lambda deployment zip: `bootstrap` (cargo lambda build --release --output-format zip)
# plus the models and ONNX Runtime in the rollcall cache layout, which the function finds through
# LAMBDA_TASK_ROOT (= ROLLCALL_HOME):
#
#   bootstrap
#   models/   pnet.onnx rnet.onnx onet.onnx fr_feature.onnx fr_detect.onnx fr_landmark.onnx
#             face_detection_yunet_2023mar_int8bq.onnx
#   runtime/  libonnxruntime.so.1.31.1   (for the zip's architecture)
#
# Usage: lambda/package.sh [--arch arm64|x86_64] [--out DIR]
#   --arch  target architecture (default arm64, Graviton); must match the template's Architecture
#   --out   where rollcall-lambda-<arch>.zip goes (default $CARGO_TARGET_DIR/lambda)
#
# Models come from the rollcall cache (`rollcall models fetch`; `rollcall models path` tells where,
# default ~/.local/share/rollcall, or $ROLLCALL_HOME). The cache holds ONNX Runtime for this
# machine only: for another architecture the pinned wheel of models/manifest.toml is downloaded
# with pip (into ~/.cache/rollcall/lambda-runtime) and checked against the manifest's sha256.
# cargo-lambda (with zig for cross builds) comes from scripts/cargo-lambda.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=arm64
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$arch" in
  arm64|aarch64) arch=arm64; flag=--arm64; ort_arch=aarch64 ;;
  x86_64|x86-64|amd64) arch=x86_64; flag=--x86-64; ort_arch=x86_64 ;;
  *) echo "package.sh: --arch must be arm64 or x86_64" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rollcall/cargo-target}"
out="${out:-$CARGO_TARGET_DIR/lambda}"
# shellcheck source=scripts/cargo-lambda
. scripts/cargo-lambda

# The model cache: ask rollcall when it is built, else the documented default.
rollcall_bin="${ROLLCALL_BIN:-$CARGO_TARGET_DIR/debug/rollcall}"
if [ -x "$rollcall_bin" ]; then
  models_dir="$(dirname "$("$rollcall_bin" models path fr_feature.onnx)")"
else
  models_dir="${ROLLCALL_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/rollcall}/models"
fi
cache_root="$(dirname "$models_dir")"
# The files the pipeline loads (recognizer-lib FacePipeline::load with the default options).
models=(pnet.onnx rnet.onnx onet.onnx fr_feature.onnx fr_detect.onnx fr_landmark.onnx
  face_detection_yunet_2023mar_int8bq.onnx)
for m in "${models[@]}"; do
  [ -f "$models_dir/$m" ] || { echo "package.sh: $models_dir/$m missing: run \`rollcall models fetch\`" >&2; exit 1; }
done

# ONNX Runtime for the target architecture, pinned by models/manifest.toml.
ort_info="$(python3 - "$ort_arch" <<'EOF'
import sys, tomllib
manifest = tomllib.load(open("models/manifest.toml", "rb"))
arch = sys.argv[1]
f = next(f for f in manifest["file"] if f["kind"] == "runtime" and f.get("arch") == arch)
p = next(p for p in manifest["package"] if p["id"] == f["package"])
print(f["name"], f["path"], f["sha256"], p["name"], p["version"], p["platform"], p["archive"], p["sha256"])
EOF
)"
read -r ort_name ort_member ort_sha ort_pkg ort_version ort_platform ort_archive ort_archive_sha <<<"$ort_info"
if [ "$ort_arch" = "$(uname -m)" ] && [ -f "$cache_root/runtime/$ort_name" ]; then
  ort_file="$cache_root/runtime/$ort_name"
else
  ort_dir="$HOME/.cache/rollcall/lambda-runtime/$ort_arch"
  ort_file="$ort_dir/$ort_name"
  if [ ! -f "$ort_file" ]; then
    mkdir -p "$ort_dir"
    echo "package.sh: fetching $ort_pkg==$ort_version ($ort_platform) with pip" >&2
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform "$ort_platform" --python-version 3.11 -d "$ort_dir" "$ort_pkg==$ort_version"
    echo "$ort_archive_sha  $ort_dir/$ort_archive" | sha256sum -c --quiet
    python3 -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
      "$ort_dir/$ort_archive" "$ort_member" "$ort_file"
    rm -f "$ort_dir/$ort_archive"
  fi
fi
echo "$ort_sha  $ort_file" | sha256sum -c --quiet

# bootstrap.zip, then the models and the runtime added beside it.
build_dir="$CARGO_TARGET_DIR/lambda-build-$arch"
started=$(date +%s)
cargo lambda build --release "$flag" --output-format zip --lambda-dir "$build_dir" \
  -p rollcall-lambda --bin rollcall-lambda
echo "package.sh: cargo lambda build took $(( $(date +%s) - started )) s" >&2
mkdir -p "$out"
zip_path="$out/rollcall-lambda-$arch.zip"
# The release profile keeps line tables (debug = "line-tables-only"): strip them from the copy
# that ships (62 -> 17 MB for x86_64) with zig's objcopy, which handles both architectures.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
python3 -m zipfile -e "$build_dir/rollcall-lambda/bootstrap.zip" "$stage"
python3 -m ziglang objcopy --strip-debug "$stage/bootstrap" "$stage/bootstrap.stripped"
python3 - "$zip_path" "$stage/bootstrap.stripped" "$models_dir" "$ort_file" "$ort_name" "${models[@]}" <<'EOF'
import os, sys, zipfile
zip_path, bootstrap, models_dir, ort_file, ort_name, *models = sys.argv[1:]
def add(z, path, name, mode):
    info = zipfile.ZipInfo.from_file(path, name)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(path, "rb") as f:
        z.writestr(info, f.read(), compresslevel=9)
with zipfile.ZipFile(zip_path, "w") as z:
    add(z, bootstrap, "bootstrap", 0o755)
    for m in models:
        add(z, os.path.join(models_dir, m), f"models/{m}", 0o644)
    add(z, ort_file, f"runtime/{ort_name}", 0o644)
with zipfile.ZipFile(zip_path) as z:
    unzipped = sum(i.file_size for i in z.infolist())
    for i in z.infolist():
        print(f"  {i.filename:<36} {i.file_size / 1e6:8.2f} MB -> {i.compress_size / 1e6:6.2f} MB")
print(f"{zip_path}: {os.path.getsize(zip_path) / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped"
      f" (Lambda limits: 50 MB direct upload, 250 MB unzipped)")
EOF
