#!/usr/bin/env bash
# A real SLURM on this one machine (Debian 12, root, no systemd) for developers and CI:
# munged + slurmctld + two emulated nodes n1, n2 (one slurmd each), partition "debug".
# Usage: bash slurm/dev-cluster.sh start|stop|status
# Env: GENRE_HPC_SLURM_CPUS = CPUs declared per node (default 2).
set -euo pipefail

NODES=(n1 n2)
CPUS="${GENRE_HPC_SLURM_CPUS:-2}"
CONF=/etc/slurm/slurm.conf
LOGDIR=/var/log/slurm
RUNDIR=/run/slurm-local
WAIT_SECONDS=60

log() { echo "dev-cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# PIDs of live processes named $1 whose command line matches regex $2.
# PID 1 here does not reap, so killed daemons linger as zombies: skip state Z/X (kill -0 would lie).
pids() {
    ps -eo pid=,stat=,comm=,args= | awk -v c="$1" -v re="${2:-}" \
        '$3 == c && $2 !~ /^[ZX]/ { $2 = ""; $3 = ""; if ($0 ~ re) print $1 }'
}
running() { [ -n "$(pids "$@")" ]; }

# TERM, wait up to 10 s, then KILL.
stop_procs() {
    local name=$1 re=${2:-} i
    local p; p=$(pids "$name" "$re")
    [ -n "$p" ] || return 0
    log "stopping $name${re:+ matching '$re'} (pid $(echo $p))"
    kill $p 2>/dev/null || true
    for i in $(seq 50); do running "$name" "$re" || return 0; sleep 0.2; done
    kill -9 $(pids "$name" "$re") 2>/dev/null || true
    sleep 0.5
}

node_re() { echo " -N $1( |\$)"; }

# "node state" lines; empty if slurmctld does not answer.
node_states() { timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null | sort -u || true; }

# Usable = every node idle/mixed/allocated/completing (a trailing * means not responding).
nodes_usable() {
    local s; s=$(node_states)
    [ -n "$s" ] && ! echo "$s" | awk '{print $2}' | grep -qvE '^(idle|mixed|allocated|completing)$'
}

install_packages() {
    local pkgs=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only if they lack the packages; retry after an update if they are stale.
    apt-cache show "${pkgs[@]}" >/dev/null 2>&1 || apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null; }
}

start_munge() {
    # /run/munge is normally made by systemd.
    install -d -o munge -g munge -m 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then   # Debian's postinst normally creates it
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    fi
    if ! running munged; then
        rm -f /run/munge/munged.pid
        runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1
    fi
    munge -n | unmunge >/dev/null || die "munge credential check failed (see /var/log/munge/munged.log)"
}

# Sets CONF_CHANGED=1 if the file had to be (re)written.
write_conf() {
    local host mem_mb tmp
    host=$(hostname -s)
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.4 }' /proc/meminfo)
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Written by slurm/dev-cluster.sh (genre-hpc): a dev/CI cluster of two emulated nodes on one host.
ClusterName=localcluster
# 'localhost' is refused unless it is the hostname; the address keeps it local.
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=${RUNDIR}/slurmctld.pid
SlurmdPidFile=${RUNDIR}/slurmd-%n.pid
SlurmctldLogFile=${LOGDIR}/slurmctld.log
SlurmdLogFile=${LOGDIR}/slurmd-%n.log
# No cgroups/systemd here: plain process tracking, no task binding, no accounting daemon.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
# The default waits 3 s before starting a batch job.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Trust the CPUs/memory declared below even if they exceed the hardware (else the node drains).
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
# Keep finished jobs visible to 'scontrol show job' for 5 min (there is no sacct).
MinJobAge=300
NodeName=n[1-2] NodeHostname=${host} NodeAddr=127.0.0.1 Port=[17001-17002] CPUs=${CPUS} RealMemory=${mem_mb}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    CONF_CHANGED=0
    cmp -s "$tmp" "$CONF" || { install -D -m 0644 "$tmp" "$CONF"; CONF_CHANGED=1; }
    rm -f "$tmp"
}

show_logs() {
    local f
    # *.out holds what a daemon printed before it could log (e.g. config parse errors).
    for f in "$LOGDIR"/slurmctld.out "$LOGDIR"/slurmctld.log "$LOGDIR"/slurmd-*.out "$LOGDIR"/slurmd-*.log; do
        [ -s "$f" ] && { echo "--- tail $f"; tail -n 15 "$f"; }
    done >&2
}

cmd_start() {
    local n t0=$SECONDS
    if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
       ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
        log "installing slurm + munge packages"
        install_packages
    fi
    start_munge

    write_conf
    install -d /var/spool/slurmctld "$LOGDIR" "$RUNDIR"
    for n in "${NODES[@]}"; do install -d "/var/spool/slurmd/$n"; done
    # Running daemons with an old config would not pick up the new one: restart them.
    if [ "$CONF_CHANGED" = 1 ]; then
        for n in "${NODES[@]}"; do stop_procs slurmd "$(node_re "$n")"; done
        stop_procs slurmctld
    fi

    # Redirect stdio so the daemons never hold a caller's pipe open (CI, subprocess capture).
    running slurmctld || slurmctld </dev/null >"$LOGDIR/slurmctld.out" 2>&1 || { show_logs; die "slurmctld failed to start"; }
    for n in "${NODES[@]}"; do
        running slurmd "$(node_re "$n")" ||
            slurmd -N "$n" </dev/null >"$LOGDIR/slurmd-$n.out" 2>&1 || { show_logs; die "slurmd -N $n failed to start"; }
    done

    local deadline=$((SECONDS + WAIT_SECONDS)) states bad
    until nodes_usable; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "nodes not usable after ${WAIT_SECONDS}s; node states:"
            node_states >&2; show_logs
            die "cluster did not come up"
        fi
        states=$(node_states)
        # Stale state from an earlier run (drained/down nodes that do respond): put them back into service.
        bad=$(echo "$states" | awk '$2 ~ /^(down|drain|fail)/ && $2 !~ /\*$/ {print $1}' | paste -sd, -)
        if [ -n "$bad" ]; then
            log "resuming nodes $bad"
            scontrol update nodename="$bad" state=resume 2>/dev/null || true
        fi
        sleep 0.5
    done
    log "up in $((SECONDS - t0))s: $(sinfo -h -o '%P %a %D nodes %T %N' | paste -sd';' -)"
}

cmd_stop() {
    local i
    if running slurmctld && command -v squeue >/dev/null; then
        # slurmd exiting does not end running jobs: cancel them and let them finish first.
        timeout 10 squeue -h -o %A 2>/dev/null | xargs -r scancel 2>/dev/null || true
        for i in $(seq 40); do
            [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    stop_procs slurmd
    stop_procs slurmctld
    stop_procs munged
    log "stopped"
}

cmd_status() {
    local ok=0 n
    # report LABEL NAME [ARGS-REGEX]
    report() { if running "$2" "${3:-}"; then echo "$1: running"; else echo "$1: NOT running"; ok=1; fi; }
    report munged munged
    report slurmctld slurmctld
    for n in "${NODES[@]}"; do report "slurmd $n" slurmd "$(node_re "$n")"; done
    if [ "$ok" = 0 ]; then sinfo || ok=1; fi
    if [ "$ok" = 0 ] && ! nodes_usable; then echo "nodes not usable"; ok=1; fi
    return "$ok"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
