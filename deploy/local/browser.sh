#!/usr/bin/env bash
# The browser the console's tests drive: Chromium from Debian's packages (Playwright's
# own browser download is not used; it drives this binary).
#   deploy/local/browser.sh install   install it unless present
#   deploy/local/browser.sh path      print its path
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
. "$(dirname "$0")/lib.sh"

find_chromium() {
  CHROMIUM=$(first_executable "${VITALS_TEST_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser)
}

install() {
  if find_chromium; then
    return 0
  fi
  apt_install chromium Chromium "Chromium is not installed"
  find_chromium || die "chromium is installed, but not found at /usr/bin/chromium"
  say "Installed $("$CHROMIUM" --version)"
}

case "${1:-}" in
  install) install ;;
  path) find_chromium || die "Chromium is not installed; run: deploy/local/browser.sh install"; say "$CHROMIUM" ;;
  *) warn "usage: deploy/local/browser.sh install|path"; exit 2 ;;
esac
