#!/bin/sh
# The health page's browser tests drive Debian's Chromium (/usr/bin/chromium) with Playwright's
# Python package; `playwright install` is never used. Installs it when missing (CI starts bare).
set -eu
[ -x /usr/bin/chromium ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing chromium for the browser tests (apt-get)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
/usr/bin/chromium --version
