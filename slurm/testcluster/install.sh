#!/usr/bin/env bash
# Install the packages needed by start.sh (Debian/Ubuntu, as root).
# Idempotent: does nothing when everything is already installed.
# Set FASHION_SLURM_FORCE_APT=1 to run apt-get even then.
set -euo pipefail

PKGS=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install.sh: run as root (or install sudo)" >&2; exit 1; }
    SUDO=(sudo)
fi

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} == 0)) && [[ "${FASHION_SLURM_FORCE_APT:-0}" != 1 ]]; then
    echo "install.sh: already installed: ${PKGS[*]}" >&2
    exit 0
fi

echo "install.sh: installing ${missing[*]:-${PKGS[*]}}" >&2
export DEBIAN_FRONTEND=noninteractive
# Package postinst scripts try to start services; without systemd/init that
# fails or is pointless.  policy-rc.d with exit 101 tells invoke-rc.d not to.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 0755 "$policy"
    created_policy=1
fi
cleanup() { ((created_policy)) && "${SUDO[@]}" rm -f "$policy" || true; }
trap cleanup EXIT

"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${PKGS[@]}"

for bin in slurmctld slurmd slurmdbd munged mariadbd sbatch sacct; do
    command -v "$bin" >/dev/null 2>&1 || [[ -x /usr/sbin/$bin ]] || { echo "install.sh: $bin missing after install" >&2; exit 1; }
done
echo "install.sh: done" >&2
