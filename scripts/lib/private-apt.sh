# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Sourced by scripts/fetch-guest-{arm64,riscv64,amd64}.sh: apt with a private
# state, to download (never install) a Debian release's packages of another
# architecture or release than the host's. Sources list, lists, cache and an
# empty dpkg status live under one directory, so the host's apt
# configuration, architectures and package set are neither read for
# packages nor changed.
#
#   papt_host_mirrors                 MIRROR and SECURITY_MIRROR, unless set,
#                                     from the host's own apt sources (deb822
#                                     or one-line form; "" when there is none)
#   papt_init DIR ARCH LINE...        the state under DIR, the sources list
#                                     from the LINEs ("deb URL SUITE main",
#                                     signed by Debian's archive keyring when
#                                     the host has it); sets the array PAPT
#                                     of apt options
#   papt_update NAME LOG              apt-get update, once (no lists yet)
#   papt_depends_kernel META          the linux-image-<version> package the
#                                     metapackage META depends on
#   papt_download NAME DEST LOG PKG...  apt-get download into DEST
# NAME prefixes messages; on failure a LOG is shown and the function fails.

papt_host_uris() {
	{ grep -rhoE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+' \
		/etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } |
		sed -E 's/^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)//'
}

papt_host_mirrors() {
	MIRROR=${MIRROR:-$(papt_host_uris | grep -E '/debian/?$' | head -1)}
	SECURITY_MIRROR=${SECURITY_MIRROR:-$(papt_host_uris | grep -E '/debian-security/?$' | head -1)}
}

papt_init() {
	local dir=$1 arch=$2 keyring=/usr/share/keyrings/debian-archive-keyring.gpg signed="" line
	shift 2
	mkdir -p "$dir"/lists/partial "$dir"/cache/archives/partial "$dir"/etc "$dir"/state
	[ -r "$keyring" ] && signed="[signed-by=$keyring] "
	for line in "$@"; do
		echo "deb ${signed}${line#deb }"
	done >"$dir/etc/sources.list"
	: >"$dir/state/status"
	PAPT=(-o "Dir::Etc::SourceList=$dir/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State=$dir/state" -o "Dir::State::Lists=$dir/lists"
		-o "Dir::State::status=$dir/state/status" -o "Dir::Cache=$dir/cache"
		-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
		-o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o Debug::NoLocking=1
		-o APT::Sandbox::User=root)
	PAPT_DIR=$dir
}

papt_update() {
	local name=$1 log=$2
	ls "$PAPT_DIR"/lists/*Packages* >/dev/null 2>&1 && return 0
	echo "$name: apt-get update (private state in $PAPT_DIR)"
	apt-get -q "${PAPT[@]}" update >"$log" 2>&1 || {
		cat "$log" >&2
		return 1
	}
}

papt_depends_kernel() {
	apt-cache "${PAPT[@]}" depends "$1" | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

papt_download() {
	local name=$1 dest=$2 log=$3
	shift 3
	mkdir -p "$dest"
	(cd "$dest" && apt-get -q "${PAPT[@]}" download "$@") >"$log" 2>&1 || {
		echo "$name: apt-get download $* failed:" >&2
		cat "$log" >&2
		return 1
	}
}
