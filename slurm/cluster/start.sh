#!/usr/bin/env bash
# Start a real single-node SLURM cluster (munge + MariaDB + slurmdbd +
# slurmctld + slurmd) on localhost, without systemd.  Everything lives in
# STATE_DIR (default /tmp/fashion-slurm).  Idempotent: when the cluster is
# already up and healthy it only prints the env line.
#
# Usage: slurm/cluster/start.sh [STATE_DIR]
# Last line of stdout: export SLURM_CONF=STATE_DIR/slurm.conf
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$HERE/common.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,9p' "$0"
    exit 0
fi
init_paths "${1:-}"
load_knobs

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (daemons run as root; SlurmUser=root)"
    exit 1
fi
for bin in munged mungekey munge unmunge mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sinfo sacct sacctmgr scontrol; do
    if ! command -v "$bin" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$bin" ]]; then
        log "missing '$bin': run slurm/cluster/install.sh first"
        exit 1
    fi
done
export PATH="$PATH:/usr/sbin:/sbin"

HOST=$(hostname -s)
export SLURM_CONF="$SLURM_CONF_FILE"
T0=$(date +%s)

# ---------------------------------------------------------------------------
# health checks
# ---------------------------------------------------------------------------
node_state() { sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1; }

node_healthy() {
    # exact states only: a '*' suffix (not responding), drain or down are unhealthy
    local st
    st=$(node_state) || return 1
    [[ "$st" =~ ^(idle|mixed|allocated|completing)$ ]]
}

cluster_healthy() {
    local d
    for d in "${DAEMONS[@]}"; do
        daemon_pid "$d" >/dev/null || return 1
    done
    [[ -f "$SLURM_CONF_FILE" ]] || return 1
    node_healthy || return 1
    timeout 10 sacct -n -X -S now-1minutes -o JobID >/dev/null 2>&1 || return 1
}

print_env() {
    echo "export SLURM_CONF=$SLURM_CONF_FILE" >"$ENV_FILE"
    chmod 0644 "$ENV_FILE"
    echo "export SLURM_CONF=$SLURM_CONF_FILE"
}

if cluster_healthy; then
    log "cluster already running in $STATE_DIR"
    print_env
    exit 0
fi

# Anything half-running from this STATE_DIR is stopped first (state is kept).
for d in "${DAEMONS[@]}"; do
    if daemon_pid "$d" >/dev/null; then
        log "cluster in $STATE_DIR is partially up/unhealthy; restarting it"
        "$HERE/stop.sh" "$STATE_DIR" >&2
        break
    fi
done

fail() {
    local name=$1
    shift
    log "ERROR: $*"
    if [[ -n "$name" ]]; then
        local lf
        lf=$(log_file "$name")
        for lf in "$lf" "$LOG_DIR/$name.out"; do
            if [[ -s "$lf" ]]; then
                log "---- last lines of $lf ----"
                tail -n 25 "$lf" >&2 || true
            fi
        done
    fi
    if [[ "${FASHION_SLURM_KEEP_ON_FAILURE:-0}" != 1 ]]; then
        log "stopping what was started (set FASHION_SLURM_KEEP_ON_FAILURE=1 to keep it for debugging)"
        "$HERE/stop.sh" "$STATE_DIR" >&2 || true
    fi
    exit 1
}

# wait_for NAME DESCRIPTION CMD...: poll CMD until it succeeds, NAME must stay alive
wait_for() {
    local name=$1 what=$2
    shift 2
    local deadline=$(($(date +%s) + FASHION_SLURM_TIMEOUT))
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [[ -n "$name" ]] && ! daemon_pid "$name" >/dev/null; then
            fail "$name" "$name died while waiting for: $what"
        fi
        if (($(date +%s) >= deadline)); then
            fail "$name" "timed out after ${FASHION_SLURM_TIMEOUT}s waiting for: $what"
        fi
        sleep 0.2
    done
}

# launch NAME CMD...: run CMD in the background in its own session, PID file in RUN_DIR
launch() {
    local name=$1
    shift
    local pf
    pf=$(pid_file "$name")
    rm -f "$pf"
    # no job control in scripts, so setsid execs directly and $! is the daemon PID
    setsid nohup "$@" >>"$LOG_DIR/$name.out" 2>&1 </dev/null &
    echo $! >"$pf"
    log "started $name (pid $!)"
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
for p in "$FASHION_SLURM_MYSQL_PORT" "$FASHION_SLURM_DBD_PORT" "$FASHION_SLURM_CTLD_PORT" "$FASHION_SLURM_SLURMD_PORT"; do
    port_free "$p" || fail "" "TCP port 127.0.0.1:$p is already in use (another cluster / STATE_DIR? see README knobs)"
done

# ---------------------------------------------------------------------------
# directories and config files (configs are regenerated on every start)
# ---------------------------------------------------------------------------
umask 022
mkdir -p "$STATE_DIR" "$RUN_DIR" "$LOG_DIR" "$MUNGE_DIR" "$CTLD_STATE" "$SPOOL_DIR" "$DEV_DIR"
chmod 0755 "$STATE_DIR" "$RUN_DIR" "$MUNGE_DIR" "$DEV_DIR"
chmod 0700 "$LOG_DIR" "$CTLD_STATE" "$SPOOL_DIR"

if [[ -z "$FASHION_SLURM_MEM_MB" ]]; then
    real_mb=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
    FASHION_SLURM_MEM_MB=$((real_mb - 1024))
    ((FASHION_SLURM_MEM_MB > 16000)) && FASHION_SLURM_MEM_MB=16000
    ((FASHION_SLURM_MEM_MB < 512)) && FASHION_SLURM_MEM_MB=512
fi
save_knobs

# fake GPU device files: gres.conf File= must name character devices
gres_files=""
for ((i = 0; i < FASHION_SLURM_GPUS; i++)); do
    ln -sfn /dev/null "$DEV_DIR/gpu$i"
done
if ((FASHION_SLURM_GPUS > 0)); then
    gres_files="$DEV_DIR/gpu[0-$((FASHION_SLURM_GPUS - 1))]"
fi

cat >"$SLURM_CONF_FILE" <<EOF
# Generated by slurm/cluster/start.sh -- regenerated on every start.
ClusterName=$FASHION_SLURM_CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$FASHION_SLURM_CTLD_PORT
SlurmdPort=$FASHION_SLURM_SLURMD_PORT
SlurmUser=root
SlurmdUser=root

AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10

StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SPOOL_DIR/slurmd
SlurmctldPidFile=$(own_pid_file slurmctld)
SlurmdPidFile=$(own_pid_file slurmd)
SlurmctldLogFile=$(log_file slurmctld)
SlurmdLogFile=$(log_file slurmd)
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$STATE_DIR/plugstack.conf
MailProg=/bin/true

ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=2,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU

ReturnToService=2
MinJobAge=30
KillWait=2
JobRequeue=1
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$FASHION_SLURM_DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none

GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$FASHION_SLURM_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$FASHION_SLURM_CPUS ThreadsPerCore=1 RealMemory=$FASHION_SLURM_MEM_MB Gres=gpu:$FASHION_SLURM_GPUS State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF

{
    echo "# Generated by slurm/cluster/start.sh"
    echo "AutoDetect=off"
    if [[ -n "$gres_files" ]]; then
        echo "NodeName=$HOST Name=gpu File=$gres_files"
    fi
} >"$GRES_CONF_FILE"

# empty plugstack so the system /etc/slurm/plugstack.conf.d is not picked up
: >"$STATE_DIR/plugstack.conf"

if [[ ! -s "$DB_PASS_FILE" ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DB_PASS_FILE")
fi
chmod 0600 "$DB_PASS_FILE"
DB_PASS=$(cat "$DB_PASS_FILE")

(
    umask 077
    cat >"$DBD_CONF_FILE" <<EOF
# Generated by slurm/cluster/start.sh -- must be mode 0600, owned by SlurmUser.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$FASHION_SLURM_DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$(log_file slurmdbd)
PidFile=$(own_pid_file slurmdbd)
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$FASHION_SLURM_MYSQL_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)
chown root:root "$DBD_CONF_FILE"
chmod 0600 "$DBD_CONF_FILE"

# ---------------------------------------------------------------------------
# 1. munged (private key, socket, pid, log, seed)
# ---------------------------------------------------------------------------
if [[ ! -s "$MUNGE_KEY" ]]; then
    if ! mungekey --create --force --keyfile="$MUNGE_KEY" >/dev/null 2>&1; then
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
fi
chown root:root "$MUNGE_KEY"
chmod 0600 "$MUNGE_KEY"
rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
launch munged munged --foreground --force \
    --socket="$MUNGE_SOCKET" --key-file="$MUNGE_KEY" \
    --pid-file="$(own_pid_file munged)" --log-file="$(log_file munged)" \
    --seed-file="$MUNGE_DIR/munged.seed"
munge_ok() { munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET"; }
wait_for munged "munge socket $MUNGE_SOCKET" munge_ok

# ---------------------------------------------------------------------------
# 2. mariadbd on 127.0.0.1:$FASHION_SLURM_MYSQL_PORT, datadir in STATE_DIR
# ---------------------------------------------------------------------------
MYSQL_OPTS=(--no-defaults --datadir="$DB_DIR" --socket="$DB_SOCKET" --user=root)
db_fresh=0
if [[ ! -d "$DB_DIR/mysql" ]]; then
    rm -rf "$DB_DIR"
    log "initialising MariaDB datadir $DB_DIR"
    mariadb-install-db "${MYSQL_OPTS[@]}" --auth-root-authentication-method=socket \
        --skip-test-db >"$(log_file mariadb-install-db)" 2>&1 ||
        fail mariadb-install-db "mariadb-install-db failed"
    db_fresh=1
fi
launch mariadbd mariadbd "${MYSQL_OPTS[@]}" \
    --port="$FASHION_SLURM_MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$(own_pid_file mariadbd)" --log-error="$(log_file mariadbd)" \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
    --innodb-lock-wait-timeout=900 --max-allowed-packet=16M --skip-log-bin
mysql_root() { mariadb --no-defaults --protocol=socket -S "$DB_SOCKET" -u root "$@"; }
wait_for mariadbd "MariaDB on $DB_SOCKET" mysql_root -e 'SELECT 1'
# (re)create the slurm DB user every time: cheap, and keeps it in sync with db.pass
mysql_root <<EOF || fail mariadbd "could not create the slurm database user"
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
[[ $db_fresh == 1 ]] && log "MariaDB initialised"

# ---------------------------------------------------------------------------
# 3. slurmdbd (reads slurmdbd.conf next to SLURM_CONF)
# ---------------------------------------------------------------------------
launch slurmdbd slurmdbd -D
wait_for slurmdbd "slurmdbd on 127.0.0.1:$FASHION_SLURM_DBD_PORT" \
    timeout 10 sacctmgr -n -P list cluster format=cluster

sacctmgr_has() { [[ -n "$(timeout 10 sacctmgr -n -P "$@" 2>/dev/null)" ]]; }
sacctmgr_do() {
    local out
    if ! out=$(timeout 20 sacctmgr -i "$@" 2>&1); then
        # "Nothing new added" style answers exit non-zero but are fine
        grep -qiE 'nothing new|already exists' <<<"$out" || fail slurmdbd "sacctmgr $*: $out"
    fi
}
if ! sacctmgr_has list cluster "$FASHION_SLURM_CLUSTER" format=cluster; then
    sacctmgr_do add cluster "$FASHION_SLURM_CLUSTER"
fi
for acct in default testacct; do
    if ! sacctmgr_has list account "$acct" format=account; then
        sacctmgr_do add account "$acct" cluster="$FASHION_SLURM_CLUSTER" \
            description="fashion-slurm $acct" organization=fashion
    fi
done
users=(root)
[[ -n "${SUDO_USER:-}" && "${SUDO_USER}" != root ]] && users+=("$SUDO_USER")
for u in ${FASHION_SLURM_USERS:-}; do users+=("$u"); done
for u in "${users[@]}"; do
    for acct in default testacct; do
        if ! sacctmgr_has list assoc user="$u" account="$acct" cluster="$FASHION_SLURM_CLUSTER" format=user; then
            sacctmgr_do add user "$u" account="$acct" cluster="$FASHION_SLURM_CLUSTER"
        fi
    done
    # root is pre-created in account "root"; make "default" everybody's default
    if [[ "$(timeout 10 sacctmgr -n -P list user "$u" format=defaultaccount 2>/dev/null)" != default ]]; then
        sacctmgr_do modify user "$u" set defaultaccount=default
    fi
done

# ---------------------------------------------------------------------------
# 4. slurmctld, 5. slurmd
# ---------------------------------------------------------------------------
launch slurmctld slurmctld -D -f "$SLURM_CONF_FILE"
wait_for slurmctld "slurmctld to answer" timeout 10 scontrol ping

mkdir -p "$SPOOL_DIR/slurmd"
launch slurmd slurmd -D -f "$SLURM_CONF_FILE" -N "$HOST"
node_up() {
    # a node drained by stop.sh (to requeue running jobs) is resumed here
    if [[ "$(sinfo -h -N -n "$HOST" -o '%E' 2>/dev/null | head -n1)" == "$DRAIN_REASON" ]]; then
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    fi
    node_healthy
}
wait_for slurmd "node $HOST to become idle in sinfo" node_up
wait_for slurmdbd "sacct to work" timeout 10 sacct -n -X -S now-1minutes -o JobID

log "cluster up in $(($(date +%s) - T0))s: partitions $(sinfo -h -o %P | tr '\n' ' ')"
print_env
