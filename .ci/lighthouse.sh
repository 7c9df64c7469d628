#!/usr/bin/env bash
# Lighthouse on the log-in page and the chat page (logged in as user1), phone
# (Lighthouse's default: emulated phone, throttled) and desktop, against a running
# `weaprous up` with the demo users. Prints each category's score and the paint
# figures; docs/web-ui.md has the last results. Not part of CI (a minute of Chromium
# per page); run it by hand after changing the page:
#
#   weaprous up --peers 1 ... &        # any ports; BASE is the proxy's URL
#   BASE=http://localhost:8080 bash .ci/lighthouse.sh
#
# Needs Chromium and npm (it installs lighthouse into target/npm).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE:-http://localhost:8080}
LIGHTHOUSE_VERSION=12.8.2
out=target/lighthouse
mkdir -p "$out" target/npm
[[ -x target/npm/node_modules/.bin/lighthouse ]] ||
  npm install --prefix target/npm --no-audit --no-fund --silent "lighthouse@$LIGHTHOUSE_VERSION"
export CHROME_PATH=${CHROME_PATH:-/usr/bin/chromium}

# A session for the chat page, sent as a cookie with every request Lighthouse makes.
cookie=$(curl -fsS -D - -o /dev/null -H 'Accept: application/json' \
  --data 'username=user1&password=password1' "$BASE/login" |
  sed -n 's/^[Ss]et-[Cc]ookie: \(weaprous_session=[^;]*\).*/\1/p' | head -1)
[[ -n $cookie ]] || { echo "log-in as user1 failed at $BASE (demo users?)"; exit 1; }
printf '{"Cookie": "%s"}' "$cookie" >"$out/headers.json"

for page in login chat; do
  url="$BASE/login" extra=()
  if [[ $page == chat ]]; then url="$BASE/" extra=(--extra-headers="$out/headers.json"); fi
  for form in phone desktop; do
    preset=()
    [[ $form == desktop ]] && preset=(--preset=desktop)
    report="$out/$page-$form.json"
    target/npm/node_modules/.bin/lighthouse "$url" "${preset[@]}" "${extra[@]}" --quiet \
      --output=json --output-path="$report" \
      --chrome-flags="--headless --no-sandbox --disable-gpu --disable-background-networking"
    node -e '
      const r = require(process.argv[1]);
      const scores = Object.values(r.categories).map((c) => `${c.id} ${Math.round(c.score * 100)}`).join(", ");
      const a = r.audits;
      console.log(`${process.argv[2]} (${r.finalDisplayedUrl}): ${scores}; FCP ${a["first-contentful-paint"].displayValue},`
        + ` LCP ${a["largest-contentful-paint"].displayValue}, TBT ${a["total-blocking-time"].displayValue},`
        + ` CLS ${a["cumulative-layout-shift"].displayValue}`);
    ' "$PWD/$report" "$page, $form"
  done
done
