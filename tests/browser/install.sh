#!/usr/bin/env bash
# Installs what the web-console browser test drives a real browser with: Chromium and its
# chromedriver from Debian's packages, and selenium from PyPI into a venv of the project's own.
# Idempotent: what is already there is kept, so warm runs cost nothing.
#
#   tests/browser/install.sh LOG_DIR VENV_DIR
#
# Prints one line, `python=PATH chromedriver=PATH chromium=PATH`, when all three are there, or
# one `missing: ...` line (on stdout, for the test to repeat as its skip reason) naming what
# could not be installed and the log that says why.
set -uo pipefail
logs="${1:?usage: install.sh LOG_DIR VENV_DIR}"
venv="${2:?usage: install.sh LOG_DIR VENV_DIR}"
mkdir -p "$logs"
# The version console.py was written against: Service(executable_path=...) and Service's
# log_output need 4.11 or later.
SELENIUM="selenium>=4.11,<5"

# Debian's chromium is /usr/bin/chromium (a wrapper script around /usr/lib/chromium/chromium);
# chromium-driver is /usr/bin/chromedriver and pins chromium to its own version. fonts-liberation
# is one of chromium's Recommends, taken alone so screenshots show the usual web fonts without
# pulling in the rest (upower, udev, mesa, a notification daemon, printer tools).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        packages=(chromium chromium-driver fonts-liberation)
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" \
            || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"; }; } \
            >"$logs/chromium-install.log" 2>&1
    else
        echo "apt-get was not run: it needs root and apt-get (uid $(id -u))" >"$logs/chromium-install.log"
    fi
fi
missing=()
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    chromium="$(command -v chromium)"
    chromedriver="$(command -v chromedriver)"
else
    missing+=("chromium and chromium-driver (Debian packages could not be installed; see $logs/chromium-install.log)")
fi

python="$venv/bin/python"
if [ ! -x "$python" ] || ! "$python" -c 'import selenium' >/dev/null 2>&1; then
    { mkdir -p "$(dirname "$venv")" && python3 -m venv "$venv" && "$venv/bin/pip" install -q "$SELENIUM"; } \
        >"$logs/selenium-install.log" 2>&1
fi
if ! [ -x "$python" ] || ! "$python" -c 'import selenium' >/dev/null 2>&1; then
    missing+=("selenium (PyPI install into $venv failed; see $logs/selenium-install.log)")
fi

if [ "${#missing[@]}" = 0 ]; then
    echo "python=$python chromedriver=$chromedriver chromium=$chromium"
else
    reason="${missing[0]}"
    for more in "${missing[@]:1}"; do reason+="; $more"; done
    echo "missing: $reason"
fi
