# Shared helpers for start.sh / stop.sh.  Sourced, not executed.
# shellcheck shell=bash

# ---- knobs (environment variables; all optional) ---------------------------
# start.sh saves the values it used in STATE_DIR/knobs.env; later starts of the
# same STATE_DIR reuse them unless overridden in the environment.
KNOBS=(
    FASHION_SLURM_CLUSTER     # ClusterName                              [fashion]
    FASHION_SLURM_CPUS        # CPUs advertised (> real cores is fine)    [8]
    FASHION_SLURM_GPUS        # fake GPUs per node (symlinks to /dev/null) [2]
    FASHION_SLURM_NODES       # slurmd daemons = nodes (one host)         [1]
    FASHION_SLURM_MEM_MB      # RealMemory  [min(16000, MemTotal - 1024)]
    FASHION_SLURM_CTLD_PORT   # SlurmctldPort                             [6917]
    FASHION_SLURM_SLURMD_PORT # SlurmdPort of node 1; node i: +10*(i-1)    [6918]
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
    : "${FASHION_SLURM_NODES:=1}"
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

# Daemons in start order, before one slurmd per node ("slurmd.NODE"); stop.sh walks them backwards.
DAEMONS=(munged mariadbd slurmdbd slurmctld)

# Node names: the host's own name for one node. Several nodes share the host (multiple-slurmd), so
# they get names of their own, which need not resolve: NodeAddr (127.0.0.1) is how SLURM reaches them.
node_names() {
    local host i
    host=$(hostname -s)
    if ((FASHION_SLURM_NODES <= 1)); then
        echo "$host"
    else
        for ((i = 1; i <= FASHION_SLURM_NODES; i++)); do echo "$host-n$i"; done
    fi
}

# slurmd port of node number $1 (1-based): 10 apart, clear of the other daemons' default ports.
slurmd_port() { echo $((FASHION_SLURM_SLURMD_PORT + 10 * ($1 - 1))); }

# The slurmd daemons that have a PID file now: "slurmd" (one node) or "slurmd.NODE" (several).
slurmd_daemons() {
    local f name
    for f in "$RUN_DIR"/slurmd.pid "$RUN_DIR"/slurmd.*.pid; do
        [[ -e "$f" && "$f" != *.own.pid ]] || continue
        name=${f##*/}
        echo "${name%.pid}"
    done
}

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
    [[ "$comm" == "${name%%.*}" ]] || return 1
    echo "$pid"
}

log() { echo "[fashion-slurm] $*" >&2; }

# kill_and_wait DESCRIPTION PID...: TERM, wait up to STOP_WAIT s, then KILL
kill_and_wait() {
    local what=$1
    shift
    local pids=("$@") alive p i
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < ${FASHION_SLURM_STOP_WAIT:-15} * 10; i++)); do
        alive=()
        for p in "${pids[@]}"; do
            if kill -0 "$p" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]]; then
                alive+=("$p")
            fi
        done
        ((${#alive[@]})) || return 0
        sleep 0.1
    done
    log "$what did not exit after ${FASHION_SLURM_STOP_WAIT:-15}s; sending KILL to ${alive[*]}"
    kill -KILL "${alive[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive=()
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
        ((${#alive[@]})) || return 0
        sleep 0.1
    done
}
