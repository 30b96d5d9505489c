# Shared helpers for start.sh / stop.sh.  Sourced, not executed.
# shellcheck shell=bash

# ---- knobs (environment variables; all optional) ---------------------------
# start.sh saves the values it used in STATE_DIR/knobs.env; later starts of the
# same STATE_DIR reuse them unless overridden in the environment.
KNOBS=(
    FASHION_SLURM_CLUSTER     # ClusterName                              [fashion]
    FASHION_SLURM_CPUS        # CPUs advertised (> real cores is fine)    [8]
    FASHION_SLURM_GPUS        # fake GPUs (symlinks to /dev/null)         [2]
    FASHION_SLURM_MEM_MB      # RealMemory  [min(16000, MemTotal - 1024)]
    FASHION_SLURM_CTLD_PORT   # SlurmctldPort                             [6917]
    FASHION_SLURM_SLURMD_PORT # SlurmdPort                                [6918]
    FASHION_SLURM_DBD_PORT    # slurmdbd port                             [6919]
    FASHION_SLURM_MYSQL_PORT  # MariaDB port on 127.0.0.1                 [3307]
)
FASHION_SLURM_TIMEOUT=${FASHION_SLURM_TIMEOUT:-60} # seconds to wait for each daemon

load_knobs() {
    local saved="$STATE_DIR/knobs.env" k v
    if [[ -f "$saved" ]]; then
        while IFS='=' read -r k v; do
            [[ " ${KNOBS[*]} " == *" $k "* ]] || continue
            [[ -n "${!k:-}" ]] || printf -v "$k" '%s' "$v"
        done <"$saved"
    fi
    : "${FASHION_SLURM_CLUSTER:=fashion}"
    : "${FASHION_SLURM_CPUS:=8}"
    : "${FASHION_SLURM_GPUS:=2}"
    : "${FASHION_SLURM_MEM_MB:=}"
    : "${FASHION_SLURM_CTLD_PORT:=6917}"
    : "${FASHION_SLURM_SLURMD_PORT:=6918}"
    : "${FASHION_SLURM_DBD_PORT:=6919}"
    : "${FASHION_SLURM_MYSQL_PORT:=3307}"
}

save_knobs() {
    local k
    for k in "${KNOBS[@]}"; do echo "$k=${!k}"; done >"$STATE_DIR/knobs.env"
}

# Drain reason set by stop.sh; start.sh resumes a node drained with it.
DRAIN_REASON="fashion-slurm stop.sh"

# Daemons in start order; stop.sh walks this list backwards.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

init_paths() {
    STATE_DIR=${1:-/tmp/fashion-slurm}
    # absolute path without requiring it to exist
    case "$STATE_DIR" in
        /*) ;;
        *) STATE_DIR="$PWD/$STATE_DIR" ;;
    esac
    STATE_DIR=${STATE_DIR%/}
    RUN_DIR="$STATE_DIR/run"
    LOG_DIR="$STATE_DIR/log"
    MUNGE_DIR="$STATE_DIR/munge"
    MUNGE_SOCKET="$MUNGE_DIR/munge.socket"
    MUNGE_KEY="$MUNGE_DIR/munge.key"
    DB_DIR="$STATE_DIR/mysql"
    DB_SOCKET="$RUN_DIR/mysqld.sock"
    CTLD_STATE="$STATE_DIR/ctld"
    SPOOL_DIR="$STATE_DIR/spool"
    DEV_DIR="$STATE_DIR/dev"
    SLURM_CONF_FILE="$STATE_DIR/slurm.conf"
    DBD_CONF_FILE="$STATE_DIR/slurmdbd.conf"
    GRES_CONF_FILE="$STATE_DIR/gres.conf"
    DB_PASS_FILE="$STATE_DIR/db.pass"
    ENV_FILE="$STATE_DIR/env.sh"
}

# PID file written by start.sh ($! of the launched process) ...
pid_file() { echo "$RUN_DIR/$1.pid"; }
# ... and the one the daemon itself writes (kept separate: daemons rewrite/
# unlink their own PID file while starting up).
own_pid_file() { echo "$RUN_DIR/$1.own.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# Print the PID of daemon $1 if its PID file points at a live process that
# really is that daemon (guards against PID reuse after a reboot).
daemon_pid() {
    local name=$1 pf pid comm
    pf=$(pid_file "$name")
    [[ -s "$pf" ]] || return 1
    pid=$(tr -dc '0-9' <"$pf")
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # a zombie is dead (some container inits never reap their orphans)
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    [[ "$comm" == "$name" ]] || return 1
    echo "$pid"
}

log() { echo "[fashion-slurm] $*" >&2; }
