#!/usr/bin/env bash
# Vendor htmx and FingerprintJS from npm into static/vendor/, pinned by version and checksum.
# Run it to upgrade (change a version, run, review the new checksum); the shop never loads
# them from a CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

# package@version  file-in-package  sha256-of-that-file  name-under-static/vendor
VENDORED=(
  "htmx.org@2.0.8 dist/htmx.min.js 22283ef68cb7545914f0a88a1bdedc7256a703d1d580c1d255217d0a50d31313 htmx.min.js"
  "@fingerprintjs/fingerprintjs@5.2.0 dist/fp.min.js 9341c632ea5657977d103ca06aa0632338dc298d4ca5338e51277c63831a2ef5 fp.min.js"
  "htmx.org@2.0.8 LICENSE d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38 htmx.LICENSE"
  "@fingerprintjs/fingerprintjs@5.2.0 LICENSE b7eeaf845cbd307fbabdde266a01c632ab9ca30d08355dbfc7acc463b5ea8ee9 fingerprintjs.LICENSE"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p static/vendor

for entry in "${VENDORED[@]}"; do
  read -r package file expected target <<<"$entry"
  echo "vendoring $package:$file -> static/vendor/$target"
  rm -rf "$work/package" "$work"/*.tgz
  (cd "$work" && npm pack --silent "$package" >/dev/null 2>&1)
  tar -xzf "$work"/*.tgz -C "$work"
  actual=$(sha256sum "$work/package/$file" | cut -d' ' -f1)
  if [ "$actual" != "$expected" ]; then
    echo "checksum mismatch for $package $file: expected $expected, got $actual" >&2
    exit 1
  fi
  cp "$work/package/$file" "static/vendor/$target"
done
echo "done"
