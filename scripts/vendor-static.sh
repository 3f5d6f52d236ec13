#!/usr/bin/env bash
# Vendor htmx, FingerprintJS, ALTCHA's widget (the waiting room's proof of work; its build with
# the worker and styles in files of their own, for the shop's Content-Security-Policy) and Swagger UI (the API page, /api/docs) from npm, and axe-core for the tests into static/vendor/, pinned by version and checksum.
# Run it to upgrade (change a version, run, review the new checksum); the shop never loads
# them from a CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

# package@version  file-in-package  sha256-of-that-file  name-under-static/vendor (or a path from the
# repository's root: axe-core, the accessibility checker, is the browser tests' own)
VENDORED=(
  "htmx.org@2.0.8 dist/htmx.min.js 22283ef68cb7545914f0a88a1bdedc7256a703d1d580c1d255217d0a50d31313 htmx.min.js"
  "@fingerprintjs/fingerprintjs@5.2.0 dist/fp.min.js 9341c632ea5657977d103ca06aa0632338dc298d4ca5338e51277c63831a2ef5 fp.min.js"
  "htmx.org@2.0.8 LICENSE d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38 htmx.LICENSE"
  "@fingerprintjs/fingerprintjs@5.2.0 LICENSE b7eeaf845cbd307fbabdde266a01c632ab9ca30d08355dbfc7acc463b5ea8ee9 fingerprintjs.LICENSE"
  "swagger-ui-dist@5.35.0 swagger-ui-bundle.js e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2 swagger-ui-bundle.js"
  "swagger-ui-dist@5.35.0 swagger-ui.css 5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d swagger-ui.css"
  "swagger-ui-dist@5.35.0 LICENSE cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30 swagger-ui.LICENSE"
  "altcha@2.3.0 dist_external/altcha.umd.cjs 9bd1d8a1db841f42e8b8e3c9ec1a78c555c5befaff803835f6c935bab143bf17 altcha.min.js"
  "altcha@2.3.0 dist_external/worker.js 9ad5e1ba86463f19f5036181122bb38c055fef01e20e05ac9269bec9eede89c8 altcha-worker.js"
  "altcha@2.3.0 dist_external/altcha.css 2be949d41cb204467d89f724622e67d7505595ac85a4114d0ccdb1ac6c62c53d altcha.css"
  "altcha@2.3.0 LICENSE.txt 74aa56cabe930086caec41910278796acea0f4b0582af3a83ff3d3271674c702 altcha.LICENSE"
  "axe-core@4.14.1 axe.min.js 29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c tests/axe/axe.min.js"
  "axe-core@4.14.1 LICENSE af175b9d96ee93c21a036152e1b905b0b95304d4ae8c2c921c7609100ba8df7e tests/axe/LICENSE"
  "swagger-ui-dist@5.35.0 swagger-ui-bundle.js.LICENSE.txt 37eb6e7e59aed57b2c1acf076574b818ea07b74265717e0bd67b59e0baf9abbb swagger-ui-bundle.THIRD-PARTY-LICENSES.txt"
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
  case "$target" in
    */*) mkdir -p "$(dirname "$target")"; cp "$work/package/$file" "$target" ;;
    *) cp "$work/package/$file" "static/vendor/$target" ;;
  esac
done
echo "done"
