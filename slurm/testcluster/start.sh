#!/usr/bin/env bash
# Start a real SLURM cluster (munge + MariaDB + slurmdbd + slurmctld + one
# slurmd per node) on localhost, without systemd.  Everything lives in
# STATE_DIR (default /tmp/fashion-slurm).  Starts only the daemons that are
# down and never touches running jobs, so it also repairs a cluster after a
# daemon died; on a healthy cluster it only prints the env line.
#
# Usage: slurm/testcluster/start.sh [STATE_DIR]     (FASHION_SLURM_NODES=2: two nodes)
# Last line of stdout: export SLURM_CONF=STATE_DIR/slurm.conf
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$HERE/common.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,10p' "$0"
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
        log "missing '$bin': run slurm/testcluster/install.sh first"
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
mapfile -t NODES < <(node_names)
SLURMDS=(slurmd) # one per node: "slurmd" alone, else "slurmd.NODE" (PID files, logs, spool)
SLURMD_TAG=""
if ((${#NODES[@]} > 1)); then
    SLURMDS=()
    for n in "${NODES[@]}"; do SLURMDS+=("slurmd.$n"); done
    SLURMD_TAG=".%n" # slurmd expands %n to its node name
fi

node_healthy() {
    # exact states only: a '*' suffix (not responding), drain or down are unhealthy
    local n st
    for n in "${NODES[@]}"; do
        st=$(sinfo -h -N -n "$n" -o '%T' 2>/dev/null | head -n1) || return 1
        [[ "$st" =~ ^(idle|mixed|allocated|completing)$ ]] || return 1
    done
}

cluster_healthy() {
    local d
    for d in "${DAEMONS[@]}" "${SLURMDS[@]}"; do
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

# Daemons still running stay as they are: restarting slurmd (or stop.sh, which
# kills job steps) would kill live jobs, which slurmctld then shows RUNNING for
# minutes.  Only the daemons that are down are started below.
RUNNING=()
for d in "${DAEMONS[@]}" "${SLURMDS[@]}"; do
    daemon_pid "$d" >/dev/null && RUNNING+=("$d")
done
running() { [[ " ${RUNNING[*]} " == *" $1 "* ]]; }
((${#RUNNING[@]})) && log "already running in $STATE_DIR: ${RUNNING[*]}; starting only the others"
STARTED=()

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
    if [[ "${FASHION_SLURM_KEEP_ON_FAILURE:-0}" != 1 ]] && ((${#STARTED[@]})); then
        # only what this start launched: daemons that were already up keep running, with their jobs
        log "stopping what was started: ${STARTED[*]} (FASHION_SLURM_KEEP_ON_FAILURE=1 keeps it for debugging)"
        local i pid
        for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
            if pid=$(daemon_pid "${STARTED[i]}"); then
                kill_and_wait "${STARTED[i]}" "$pid"
            fi
            rm -f "$(pid_file "${STARTED[i]}")" "$(own_pid_file "${STARTED[i]}")"
        done
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
        if [[ -n "$name" ]] && ! launched_alive "$name"; then
            fail "$name" "$name died while waiting for: $what"
        fi
        if (($(date +%s) >= deadline)); then
            fail "$name" "timed out after ${FASHION_SLURM_TIMEOUT}s waiting for: $what"
        fi
        sleep 0.2
    done
}

# Whether the process launched as NAME still lives, by PID alone: until setsid and nohup have exec'ed
# the daemon, its name is theirs and daemon_pid would call it dead.
launched_alive() {
    local pid
    pid=$(tr -dc '0-9' <"$(pid_file "$1")" 2>/dev/null) && [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
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
    STARTED+=("$name")
    log "started $name (pid $!)"
}

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

NODE_LINES="" GRES_LINES=""
node_list=$(IFS=,; echo "${NODES[*]}")
for ((i = 0; i < ${#NODES[@]}; i++)); do
    n=${NODES[i]}
    if ((${#NODES[@]} == 1)); then
        where="NodeAddr=127.0.0.1"
    else  # several slurmds on one host: each its own port; NodeHostname ties them to this host
        where="NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$(slurmd_port $((i + 1)))"
    fi
    NODE_LINES+="NodeName=$n $where CPUs=$FASHION_SLURM_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$FASHION_SLURM_CPUS ThreadsPerCore=1 RealMemory=$FASHION_SLURM_MEM_MB Gres=gpu:$FASHION_SLURM_GPUS State=UNKNOWN"$'\n'
    if [[ -n "$gres_files" ]]; then GRES_LINES+="NodeName=$n Name=gpu File=$gres_files"$'\n'; fi
done

# Written to the side first: daemons that are still running must keep the config they read.
cat >"$SLURM_CONF_FILE.new" <<EOF
# Generated by slurm/testcluster/start.sh -- regenerated on every start.
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
SlurmdSpoolDir=$SPOOL_DIR/slurmd$SLURMD_TAG
SlurmctldPidFile=$(own_pid_file slurmctld)
SlurmdPidFile=$(own_pid_file "slurmd$SLURMD_TAG")
SlurmctldLogFile=$(log_file slurmctld)
SlurmdLogFile=$(log_file "slurmd$SLURMD_TAG")
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
${NODE_LINES}PartitionName=cpu Nodes=$node_list Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node_list MaxTime=INFINITE State=UP
EOF
{
    echo "# Generated by slurm/testcluster/start.sh"
    echo "AutoDetect=off"
    printf '%s' "$GRES_LINES"
} >"$GRES_CONF_FILE.new"

slurm_running=0
for d in slurmctld $(slurmd_daemons); do daemon_pid "$d" >/dev/null && slurm_running=1; done
for f in "$SLURM_CONF_FILE" "$GRES_CONF_FILE"; do
    if ((slurm_running)) && [[ -f "$f" ]] && ! cmp -s "$f" "$f.new"; then
        rm -f "$SLURM_CONF_FILE.new" "$GRES_CONF_FILE.new"
        fail "" "$f would change, but ${RUNNING[*]} still run with the old one (knobs changed?); stop the cluster first: slurm/testcluster/stop.sh $STATE_DIR"
    fi
done
mv "$SLURM_CONF_FILE.new" "$SLURM_CONF_FILE"
mv "$GRES_CONF_FILE.new" "$GRES_CONF_FILE"

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
check_port() {
    running "$1" || port_free "$2" ||
        fail "" "TCP port 127.0.0.1:$2 (for $1) is already in use (another cluster / STATE_DIR? see README knobs)"
}
check_port mariadbd "$FASHION_SLURM_MYSQL_PORT"
check_port slurmdbd "$FASHION_SLURM_DBD_PORT"
check_port slurmctld "$FASHION_SLURM_CTLD_PORT"
for ((i = 0; i < ${#NODES[@]}; i++)); do
    check_port "${SLURMDS[i]}" "$(slurmd_port $((i + 1)))"
done

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
# Generated by slurm/testcluster/start.sh -- must be mode 0600, owned by SlurmUser.
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
if ! running munged; then
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    launch munged munged --foreground --force \
        --socket="$MUNGE_SOCKET" --key-file="$MUNGE_KEY" \
        --pid-file="$(own_pid_file munged)" --log-file="$(log_file munged)" \
        --seed-file="$MUNGE_DIR/munged.seed"
fi
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
running mariadbd || launch mariadbd mariadbd "${MYSQL_OPTS[@]}" \
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
running slurmdbd || launch slurmdbd slurmdbd -D
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
running slurmctld || launch slurmctld slurmctld -D -f "$SLURM_CONF_FILE"
wait_for slurmctld "slurmctld to answer" timeout 10 scontrol ping

for ((i = 0; i < ${#NODES[@]}; i++)); do
    mkdir -p "$SPOOL_DIR/${SLURMDS[i]}"
    running "${SLURMDS[i]}" || launch "${SLURMDS[i]}" slurmd -D -f "$SLURM_CONF_FILE" -N "${NODES[i]}"
done
node_up() {
    # a node drained by stop.sh (to requeue running jobs) is resumed here
    local n
    for n in "${NODES[@]}"; do
        if [[ "$(sinfo -h -N -n "$n" -o '%E' 2>/dev/null | head -n1)" == "$DRAIN_REASON" ]]; then
            scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true
        fi
    done
    node_healthy
}
wait_for "${SLURMDS[0]}" "node(s) ${NODES[*]} to become idle in sinfo" node_up
wait_for slurmdbd "sacct to work" timeout 10 sacct -n -X -S now-1minutes -o JobID

log "cluster up in $(($(date +%s) - T0))s: partitions $(sinfo -h -o %P | tr '\n' ' ')"
print_env
