#!/usr/bin/env bash
# Stop the local SLURM cluster started by start.sh: every daemon by its PID
# file (TERM, wait, KILL), plus any slurmstepd (and its job processes) left
# over from running jobs.  Controller state and the accounting DB stay in
# STATE_DIR unless --wipe is given, which deletes STATE_DIR afterwards.
#
# Running jobs: by default they are requeued first (scontrol requeue; they run
# again after the next start.sh).  FASHION_SLURM_STOP_JOBS=kill lets them be
# killed instead (they end FAILED).  Jobs that cannot be requeued are killed.
#
# Usage: slurm/testcluster/stop.sh [--wipe] [STATE_DIR]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$HERE/common.sh"

WIPE=0
ARGS=()
for a in "$@"; do
    case "$a" in
        --wipe) WIPE=1 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) ARGS+=("$a") ;;
    esac
done
init_paths "${ARGS[0]:-}"
if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (the daemons run as root)"
    exit 1
fi
STOP_WAIT=${FASHION_SLURM_STOP_WAIT:-15}
mapfile -t SLURMDS < <(slurmd_daemons)

# PIDs of all descendants of the given PIDs
descendants() {
    ps -eo pid=,ppid= | awk -v roots="$*" '
        { parent[$1] = $2 }
        END {
            n = split(roots, r, " "); for (i = 1; i <= n; i++) mark[r[i]] = 1
            do { changed = 0
                 for (p in parent) if (!(p in mark) && (parent[p] in mark)) { mark[p] = 2; changed = 1 }
            } while (changed)
            for (p in mark) if (mark[p] == 2) printf "%s ", p
        }'
}

# slurmstepd processes that belong to this cluster: their environment (inherited
# from our slurmd) carries SLURM_CONF=<STATE_DIR>/slurm.conf.
stepd_pids() {
    local d p
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [[ "$(cat "$d/comm" 2>/dev/null)" == slurmstepd ]] || continue
        if { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$SLURM_CONF_FILE"; then
            echo "$p"
        fi
    done
}

# While slurmctld is still up: drain the node (so nothing new starts), requeue
# running jobs (scancel those that refuse), and wait until none is running or
# completing, so the controller records a final state for every job.  Killing
# job steps after slurmctld is gone would leave them RUNNING in the saved state.
# start.sh resumes the node when the drain reason is ours.
if [[ "${FASHION_SLURM_STOP_JOBS:-requeue}" == requeue ]] && ((WIPE == 0)) &&
    daemon_pid slurmctld >/dev/null && [[ -f "$SLURM_CONF_FILE" ]]; then
    export SLURM_CONF="$SLURM_CONF_FILE"
    mapfile -t running < <(timeout 10 squeue -h -t RUNNING,SUSPENDED -o '%i' 2>/dev/null || true)
    if ((${#running[@]})); then
        nodes=$(timeout 10 sinfo -h -N -o '%N' 2>/dev/null | sort -u | paste -sd, -)
        timeout 10 scontrol update nodename="$nodes" state=drain reason="$DRAIN_REASON" >/dev/null 2>&1 || true
        log "requeueing ${#running[@]} running job(s): ${running[*]}"
        for j in "${running[@]}"; do
            if ! timeout 10 scontrol requeue "$j" >/dev/null 2>&1; then
                log "job $j cannot be requeued; cancelling it"
                timeout 10 scancel "$j" >/dev/null 2>&1 || true
            fi
        done
        for ((i = 0; i < STOP_WAIT * 5; i++)); do
            [[ -z "$(timeout 10 squeue -h -t RUNNING,COMPLETING,SUSPENDED -o '%i' 2>/dev/null)" ]] && break
            sleep 0.2
        done
    fi
fi

stopped_any=0
stop_daemon() {
    local name=$1 pid
    if pid=$(daemon_pid "$name"); then
        kill_and_wait "$name" "$pid"
        log "stopped $name (pid $pid)"
        stopped_any=1
    fi
    rm -f "$(pid_file "$name")" "$(own_pid_file "$name")"
}
for name in "${SLURMDS[@]}"; do stop_daemon "$name"; done
# job steps outlive slurmd; take them (and their job processes) down too
mapfile -t steps < <(stepd_pids)
if ((${#steps[@]})); then
    read -r -a kids <<<"$(descendants "${steps[@]}")"
    kill_and_wait "slurmstepd" "${steps[@]}" "${kids[@]}"
    log "stopped ${#steps[@]} slurmstepd process(es) and ${#kids[@]} job process(es)"
fi
for ((idx = ${#DAEMONS[@]} - 1; idx >= 0; idx--)); do stop_daemon "${DAEMONS[idx]}"; done
rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" 2>/dev/null || true
((stopped_any)) || log "nothing was running for $STATE_DIR"

if ((WIPE)); then
    if [[ -d "$STATE_DIR" && "$STATE_DIR" != / ]]; then
        rm -rf -- "$STATE_DIR"
        log "removed $STATE_DIR"
    fi
fi
