#!/usr/bin/env bash
# Makes local stand-ins for the base images Dockerfile.job and
# Dockerfile.operator name, for machines that reach Debian's archive but no
# container registry (this project's CI). On a machine that can pull, these
# are not needed: podman/docker pull the real images.
#
#   debian:trixie-slim                      a minbase Debian trixie rootfs
#   golang:1.26                             the same rootfs plus gcc, libc6-dev,
#                                           git, ca-certificates and the local
#                                           Go toolchain (go env GOROOT) in
#                                           /usr/local/go, with the real
#                                           image's GOPATH, PATH and WORKDIR
#   gcr.io/distroless/static-debian12:nonroot
#                                           /etc/passwd and /etc/group with
#                                           root, nobody and nonroot (65532),
#                                           CA certificates, tzdata, /tmp and
#                                           /home/nonroot; USER 65532
#
# Each rootfs is made by mmdebstrap and tagged with `podman import`. An image
# that exists already is kept (delete it to remake it). The Go version of the
# golang stand-in is the host's: the tag is the one the Dockerfiles name.
set -euo pipefail

PODMAN="${PODMAN:-podman --runtime /usr/sbin/runc --cgroup-manager cgroupfs}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=trixie
GO_TAG="${GO_TAG:-1.26}"
GO="${GO:-go}"

# The names a pull of the Dockerfiles' short names stores.
DEBIAN_IMG="docker.io/library/debian:$SUITE-slim"
GOLANG_IMG="docker.io/library/golang:$GO_TAG"
DISTROLESS_IMG="gcr.io/distroless/static-debian12:nonroot"

have() { $PODMAN image exists "$1"; }

for tool in mmdebstrap podman; do
	command -v "$tool" >/dev/null || { echo "base-images: $tool is not installed (apt-get install -y podman mmdebstrap runc)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# What the real debian:*-slim images drop to stay small; the stand-in does
# the same so that the job image's size is about what users get.
slim_hooks=(
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-exclude=/usr/share/info/*'
	--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'
)

if have "$DEBIAN_IMG"; then
	echo "base-images: $DEBIAN_IMG exists, skipping"
else
	echo "base-images: making $DEBIAN_IMG from $MIRROR"
	start=$SECONDS
	mmdebstrap --quiet --variant=minbase --format=tar "${slim_hooks[@]}" \
		"$SUITE" "$work/debian.tar" "$MIRROR"
	$PODMAN import --change 'CMD ["bash"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		"$work/debian.tar" "$DEBIAN_IMG" >/dev/null
	echo "base-images: $DEBIAN_IMG made in $((SECONDS - start)) s"
fi

if have "$GOLANG_IMG"; then
	echo "base-images: $GOLANG_IMG exists, skipping"
else
	goroot="$("$GO" env GOROOT)"
	echo "base-images: making $GOLANG_IMG ($("$GO" env GOVERSION) from $goroot)"
	start=$SECONDS
	# The real golang image is buildpack-deps:scm plus gcc and libc6-dev
	# (cgo builds) and Go in /usr/local/go. The host's local CAs
	# (/usr/local/share/ca-certificates) are trusted too: where egress goes
	# through a TLS-inspecting proxy, go mod download in the build needs them.
	mmdebstrap --quiet --variant=minbase --format=tar "${slim_hooks[@]}" \
		--include=ca-certificates,git,gcc,libc6-dev,make,pkg-config,curl \
		--customize-hook="mkdir -p \"\$1/usr/local/go\" \"\$1/go/bin\" \"\$1/go/src\" && cp -a '$goroot/.' \"\$1/usr/local/go/\" && chmod -R 1777 \"\$1/go\"" \
		--customize-hook='if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" && chroot "$1" update-ca-certificates >/dev/null; fi' \
		"$SUITE" "$work/golang.tar" "$MIRROR"
	$PODMAN import \
		--change 'ENV GOTOOLCHAIN=local' \
		--change 'ENV GOPATH=/go' \
		--change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'WORKDIR /go' \
		--change 'CMD ["bash"]' \
		"$work/golang.tar" "$GOLANG_IMG" >/dev/null
	echo "base-images: $GOLANG_IMG made in $((SECONDS - start)) s"
fi

if have "$DISTROLESS_IMG"; then
	echo "base-images: $DISTROLESS_IMG exists, skipping"
else
	echo "base-images: making $DISTROLESS_IMG"
	start=$SECONDS
	root="$work/distroless"
	mkdir -p "$root/etc/ssl/certs" "$root/usr/share" "$root/tmp" "$root/home/nonroot" "$root/root"
	# The same three users as distroless's base-files.
	cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
	cat >"$root/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
GROUP
	echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
	cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
	cp -a /usr/share/zoneinfo "$root/usr/share/zoneinfo"
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root" "$root/home/nonroot"
	chown 65532:65532 "$root/home/nonroot"
	tar --numeric-owner -C "$root" -cf "$work/distroless.tar" .
	$PODMAN import --change 'USER 65532' --change 'WORKDIR /home/nonroot' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
		"$work/distroless.tar" "$DISTROLESS_IMG" >/dev/null
	echo "base-images: $DISTROLESS_IMG made in $((SECONDS - start)) s"
fi
