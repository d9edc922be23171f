#!/usr/bin/env bash
# Install what benchmarks/overhead.py needs: nginx and wrk (Debian), py-spy in outlast's venv, and
# LiteLLM's proxy in its own venv (/tmp/llvenv by default). Idempotent; run on demand, never in CI.
#
# LiteLLM: `pip install 'litellm[proxy]'` fails here because recent releases pin certifi,
# litellm-proxy-extras and litellm-enterprise to versions the reachable registry lacks (see
# /work/shared/BENCHMARKING.md). So we read the wheel's own requirements (base + the `proxy` extra),
# relax those three pins, install them, then install the wheel with --no-deps.
#
#   benchmarks/setup.sh            # everything
#   benchmarks/setup.sh litellm    # only the LiteLLM venv (overhead.py runs this when it is missing)
set -euo pipefail

WHAT="${1:-all}"

LITELLM_VERSION="${LITELLM_VERSION:-1.109.1}"
LLVENV="${LLVENV:-/tmp/llvenv}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"

install_tools() {
    need_apt=()
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
    command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
    if [ "${#need_apt[@]}" -gt 0 ]; then
        echo "installing ${need_apt[*]} with apt-get"
        apt-get update -qq
        # policy-rc.d in containers stops the nginx package from starting a system service; we only run
        # nginx as our own foreground child.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    fi

    if [ -x "$REPO/.venv/bin/python" ] && ! [ -x "$REPO/.venv/bin/py-spy" ]; then
        echo "installing py-spy into $REPO/.venv"
        "$REPO/.venv/bin/python" -m pip install -q py-spy
    fi
}

[ "$WHAT" = "litellm" ] || install_tools

if "$LLVENV/bin/python" -c "import litellm.proxy.proxy_server" >/dev/null 2>&1; then
    echo "LiteLLM already installed in $LLVENV"
    exit 0
fi

echo "installing LiteLLM $LITELLM_VERSION into $LLVENV"
[ -x "$LLVENV/bin/python" ] || python3 -m venv "$LLVENV"
dl="$(mktemp -d)"
trap 'rm -rf "$dl"' EXIT
"$LLVENV/bin/pip" download -q --no-deps -d "$dl" "litellm==$LITELLM_VERSION"
wheel="$(ls "$dl"/litellm-*.whl)"
reqs="$dl/requirements.txt"
"$LLVENV/bin/python" - "$wheel" "$reqs" <<'PY'
import sys
import zipfile

from pip._vendor.packaging.requirements import Requirement

UNPIN = {"certifi", "litellm-proxy-extras", "litellm-enterprise"}
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    lines = zf.read(meta).decode().splitlines()
keep: dict[str, str] = {}
for line in lines:
    if not line.startswith("Requires-Dist:"):
        continue
    req = Requirement(line.split(":", 1)[1].strip())
    if req.marker is not None and not req.marker.evaluate({"extra": "proxy"}):
        continue  # another extra, or another Python
    name = req.name.lower()
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    spec = "" if name in UNPIN else str(req.specifier)
    # The same name may appear twice (base and proxy extra); the later, stricter pin wins.
    keep[name] = f"{name}{extras}{spec}"
with open(out, "w") as fh:
    fh.write("\n".join(keep.values()) + "\n")
PY
echo "requirements (pins relaxed for certifi, litellm-proxy-extras, litellm-enterprise):"
sed 's/^/  /' "$reqs"
"$LLVENV/bin/pip" install -q -r "$reqs"
"$LLVENV/bin/pip" install -q --no-deps "$wheel"
"$LLVENV/bin/python" -c "import litellm.proxy.proxy_server" && echo "LiteLLM proxy ready in $LLVENV"
