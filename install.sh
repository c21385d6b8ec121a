#!/bin/sh
# Install corecatch: download a release binary, check its sha256, put it on disk atomically.
#
#   curl -fsSL https://raw.githubusercontent.com/corecatch/corecatch/main/install.sh | sh
#
# Environment (all optional):
#   CORECATCH_VERSION      the version to install, 1.2.3 or v1.2.3 (default: the latest release)
#   CORECATCH_REPO         the GitHub repository of the releases (default: corecatch/corecatch)
#   CORECATCH_BASE_URL     the URL of the directory holding one release's assets (default: that
#                          release on GitHub; without a version its VERSION file says which)
#   CORECATCH_INSTALL_DIR  where to install (default: /usr/local/bin as root, else ~/.local/bin)
#
# In a GitHub Actions or CircleCI job a directory not on PATH is put there for the next steps
# (GITHUB_PATH, BASH_ENV).
#
# POSIX sh (dash, busybox sh); needs curl or wget, and sha256sum, shasum or busybox.
set -eu

say() { printf 'corecatch: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

os=$(uname -s)
[ "$os" = Linux ] || die "no release for operating system '$os' (Linux only)"
machine=$(uname -m)
case "$machine" in
x86_64 | amd64) arch=x86_64 ;;
aarch64 | arm64) arch=aarch64 ;;
*) die "no release for architecture '$machine'" ;;
esac

# fetch URL FILE
fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 2 -o "$2" "$1" || die "download failed: $1 (curl exit status $?)"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1" || die "download failed: $1 (wget exit status $?)"
	else
		die "neither curl nor wget is installed"
	fi
}

# sha256 FILE: prints the digest and the file name, as sha256sum does.
sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1"
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1"
	elif command -v busybox >/dev/null 2>&1; then
		busybox sha256sum "$1"
	else
		die "no sha256sum, shasum or busybox to check the download with"
	fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corecatch-install.XXXXXX")
part=
trap 'rm -rf "$tmp"; if [ -n "$part" ]; then rm -f "$part"; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

version=${CORECATCH_VERSION:-}
version=${version#v}
from=CORECATCH_VERSION
repo=${CORECATCH_REPO:-corecatch/corecatch}
if [ -n "${CORECATCH_BASE_URL:-}" ]; then
	base=${CORECATCH_BASE_URL%/}
elif [ -n "$version" ]; then
	base="https://github.com/$repo/releases/download/v$version"
else
	base="https://github.com/$repo/releases/latest/download"
fi
if [ -z "$version" ]; then
	fetch "$base/VERSION" "$tmp/VERSION"
	version=$(tr -d ' \t\r\n' <"$tmp/VERSION")
	version=${version#v}
	from="$base/VERSION"
fi
case "$version" in
'' | *[!0-9A-Za-z.+-]*) die "$from does not name a version: '$(printf '%s' "$version" | cut -c 1-80)'" ;;
esac

asset="corecatch-$version-$arch-linux"
say "downloading $base/$asset"
fetch "$base/$asset" "$tmp/$asset"
fetch "$base/$asset.sha256" "$tmp/$asset.sha256"
read -r expected _ <"$tmp/$asset.sha256" || true
expected=$(printf '%s' "$expected" | tr -d '\r' | tr 'A-F' 'a-f')
case "$expected" in
*[!0-9a-f]* | '') die "$base/$asset.sha256 is not a sha256 checksum file" ;;
esac
[ "${#expected}" -eq 64 ] || die "$base/$asset.sha256 is not a sha256 checksum file"
actual=$(sha256 "$tmp/$asset") || exit 1
actual=${actual%% *}
[ "$actual" = "$expected" ] ||
	die "checksum mismatch for $base/$asset: expected $expected, got $actual"

dir=${CORECATCH_INSTALL_DIR:-}
if [ -z "$dir" ]; then
	if [ "$(id -u)" = 0 ]; then dir=/usr/local/bin; else dir="${HOME:?HOME is not set}/.local/bin"; fi
fi
mkdir -p "$dir" || die "cannot create $dir"
# A temporary name in the same directory, then a rename: the old binary or the new one is
# always there, never a part.
part=$(mktemp "$dir/.corecatch.XXXXXX") || die "cannot write to $dir"
cp "$tmp/$asset" "$part"
chmod 755 "$part"
says=$("$part" --version) || die "the downloaded corecatch does not run here ($arch)"
mv -f "$part" "$dir/corecatch"
part=
printf '%s installed as %s\n' "$says" "$dir/corecatch"
# Not on PATH: in a CI job, put it there for the next steps; elsewhere say how.
case ":${PATH:-}:" in
*":$dir:"*) ;;
*)
	if [ "${GITHUB_ACTIONS:-}" = true ] && [ -n "${GITHUB_PATH:-}" ]; then
		printf '%s\n' "$dir" >>"$GITHUB_PATH"
		say "added $dir to PATH for the next steps (GITHUB_PATH)"
	elif [ "${CIRCLECI:-}" = true ] && [ -n "${BASH_ENV:-}" ]; then
		# shellcheck disable=SC2016 # $PATH is expanded by the next step's shell
		printf 'export PATH="%s:$PATH"\n' "$dir" >>"$BASH_ENV"
		say "added $dir to PATH for the next steps (BASH_ENV)"
	else
		say "warning: $dir is not on PATH; add it: export PATH=\"$dir:\$PATH\""
	fi
	;;
esac
