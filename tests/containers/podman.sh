#!/usr/bin/env bash
# What the container tests need, from this repository's own files (as `make` installs uv):
# podman with the runc runtime from Debian's packages, installed when missing (as root,
# with apt-get), configured for this machine, and a tiny busybox image built locally and
# tagged localhost/busybox:latest (these machines reach no container registry).
#
#   tests/containers/podman.sh              # install and configure; say what is ready
#   source tests/containers/podman.sh       # the same, and export CONTAINERS_CONF and
#                                           # CONTAINERS_STORAGE_CONF for podman to use
#
# `make test` runs it before pytest; tests/integration/test_docker.py sources it and
# skips, with the message printed here, where it fails. It does not change the calling
# shell's options (no set -e): check its return status. Afterwards
# `podman run --rm --pull=never localhost/busybox sh -c 'echo hi; exit 3'` prints hi and
# exits 3. Its folder is $SUPERTASK_PODMAN_DIR, else /tmp/supertask-podman.
#
# Facts behind the settings, seen on these machines:
# - crun (podman's default runtime) refuses this kernel's hybrid cgroup layout: use runc.
# - root here cannot raise rlimits: default_ulimits must stay at or below `ulimit -Hn`.
# - One storage per machine: a second podman storage would share /run/libpod and its
#   locks with the first, so every checkout uses the same folder (written atomically).

_supertask_podman() {
  local dir=${SUPERTASK_PODMAN_DIR:-/tmp/supertask-podman}
  local missing=() tool
  for tool in podman runc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ -x /bin/busybox ] || missing+=(busybox-static)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      echo "containers: ${missing[*]} missing, and installing needs root and apt-get (Debian):" \
           "apt-get install podman runc busybox-static" >&2
      return 1
    fi
    echo "containers: installing ${missing[*]} from Debian's packages (podman runc busybox-static)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc busybox-static) >/dev/null \
      || { echo "containers: apt-get could not install podman, runc and busybox-static" >&2; return 1; }
  fi
  mkdir -p "$dir" || return 1
  local hard
  hard=$(ulimit -Hn)
  _supertask_podman_write "$dir/containers.conf" <<CONF || return 1
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  _supertask_podman_write "$dir/storage.conf" <<CONF || return 1
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
CONF
  export CONTAINERS_CONF=$dir/containers.conf CONTAINERS_STORAGE_CONF=$dir/storage.conf
  if ! podman image exists localhost/busybox:latest 2>/dev/null; then
    local build applet
    build=$(mktemp -d "$dir/busybox.XXXXXX") || return 1
    mkdir -p "$build/rootfs/bin" "$build/rootfs/tmp"
    cp /bin/busybox "$build/rootfs/bin/"
    for applet in sh echo sleep cat env ls printf true false date kill; do
      ln -sf busybox "$build/rootfs/bin/$applet"
    done
    tar -C "$build/rootfs" -cf "$build/busybox.tar" . \
      && podman import -q "$build/busybox.tar" localhost/busybox:latest >/dev/null
    local status=$?
    rm -rf "$build"
    [ $status = 0 ] || { echo "containers: could not import the busybox image (podman import)" >&2; return 1; }
  fi
  local out
  if ! out=$(podman run --rm --pull=never localhost/busybox sh -c 'echo ready' 2>&1) || [ "$out" != ready ]; then
    echo "containers: podman cannot run a container here: ${out: -400}" >&2
    return 1
  fi
  return 0
}

_supertask_podman_write() {  # FILE: stdin to FILE, atomically (another checkout may be reading it)
  local tmp
  tmp=$(mktemp "$1.XXXXXX") && cat >"$tmp" && chmod 644 "$tmp" && mv -f "$tmp" "$1"
}

if ! (return 0 2>/dev/null); then  # run, not sourced (`return` works only in a sourced file)
  if _supertask_podman; then
    echo "containers: podman $(podman --version | awk '{print $3}') with runc and localhost/busybox ready" \
         "(CONTAINERS_CONF=$CONTAINERS_CONF)"
    exit 0
  fi
  exit 1
fi
_supertask_podman
