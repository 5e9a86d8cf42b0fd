#!/usr/bin/env bash
# Installs tutor (from PyPI) and this plugin into a throwaway virtualenv, then renders the plugin
# in a temporary TUTOR_ROOT and checks the result. No Docker needed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Built from a copy, so setuptools leaves no build/ or .egg-info in the repository.
mkdir "$work/plugin"
cp -r "$here/pyproject.toml" "$here/tutorprofiles" "$work/plugin/"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "tutor>=21,<22" "$work/plugin"
TUTOR_ROOT="$work/root" TUTOR_PLUGINS_ROOT="$work/plugins" \
    "$work/venv/bin/python" "$here/tests/test_plugin.py"
