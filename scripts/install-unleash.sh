#!/usr/bin/env bash
# Install the Unleash server the tests run against (npm's unleash-server at a
# pinned version) into a cache outside the repo, once; later runs reuse it.
#
#   scripts/install-unleash.sh          # prints the install directory
#
# Where: ${STRANGLER_CACHE:-$HOME/.cache/strangler}/unleash-server-$VERSION.
# The install happens in a temporary directory beside it and is renamed into
# place only when complete (a .complete marker inside), so an interrupted run
# never leaves a half install that looks finished. A lock keeps two runs
# (CI and a test session, say) from installing at once. 7.4.1 is the last
# release that runs on Node.js 20; newer ones need Node.js 22.
set -euo pipefail

VERSION="${UNLEASH_SERVER_VERSION:-7.4.1}"
CACHE="${STRANGLER_CACHE:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache/strangler}"
DEST="$CACHE/unleash-server-$VERSION"

if [[ -f "$DEST/.complete" ]]; then
  echo "$DEST"
  exit 0
fi

command -v node >/dev/null || { echo "install-unleash: node is not on PATH (Node.js >= 20 needed)" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-unleash: npm is not on PATH" >&2; exit 1; }
major="$(node -p 'process.versions.node.split(".")[0]')"
if (( major < 20 )); then
  echo "install-unleash: Node.js $(node --version) is too old; unleash-server $VERSION needs >= 20" >&2
  exit 1
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.unleash-install.lock"
flock 9
if [[ -f "$DEST/.complete" ]]; then  # another run finished it while we waited
  echo "$DEST"
  exit 0
fi

started=$SECONDS
tmp="$(mktemp -d "$CACHE/.unleash-server-$VERSION.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "install-unleash: installing unleash-server@$VERSION into $DEST" >&2
printf '{"name":"strangler-unleash","private":true,"type":"module"}\n' > "$tmp/package.json"
npm install --prefix "$tmp" --no-audit --no-fund --omit=dev --loglevel=error \
  "unleash-server@$VERSION" >&2
node -e "import('$tmp/node_modules/unleash-server/dist/lib/server-impl.js').then(m => { if (!m.start) process.exit(1) })"
echo "$VERSION" > "$tmp/.complete"
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
echo "install-unleash: done in $((SECONDS - started)) s" >&2
echo "$DEST"
